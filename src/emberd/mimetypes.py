"""The built-in ``mimetype.assign`` table, used when a config sets none.

The same extensions and types as lighttpd's ``config_mimetypes_default()``;
the empty key is the fallback for files that match nothing.  Matching is by
the longest suffix of the file name (``.tar.gz`` before ``.gz``), as lighttpd
does.
"""

from __future__ import annotations


class MimeTable(dict[str, str]):
    """A ``mimetype.assign`` table that finds the longest matching suffix quickly."""

    __slots__ = ("_lengths",)

    def __init__(self, table: dict[str, str]) -> None:
        super().__init__(table)
        self._lengths = sorted({len(k) for k in table}, reverse=True)

    def lookup(self, name: str) -> str | None:
        """The type of the longest key that ``name`` ends with, or None."""
        for n in self._lengths:
            if n <= len(name):
                value = self.get(name[len(name) - n :]) if n else self.get("")
                if value is not None:
                    return value
        return None


_DEFAULT: dict[str, str] = {
    ".html": "text/html",
    ".htm": "text/html",
    ".txt": "text/plain;charset=utf-8",
    ".text": "text/plain;charset=utf-8",
    ".css": "text/css;charset=utf-8",
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".xml": "text/xml",
    ".aac": "audio/aac",
    ".flac": "audio/flac",
    ".m4a": "audio/mp4",
    ".mp3": "audio/mpeg",
    ".oga": "audio/ogg",
    ".ogg": "audio/ogg",
    ".opus": "audio/opus",
    ".wav": "audio/x-wav",
    ".weba": "audio/webm",
    ".ogx": "application/ogg",
    ".apng": "image/apng",
    ".avif": "image/avif",
    ".bmp": "image/bmp",
    ".gif": "image/gif",
    ".jpeg": "image/jpeg",
    ".jpg": "image/jpeg",
    ".png": "image/png",
    ".svg": "image/svg+xml",
    ".svgz": "image/svg+xml",
    ".tiff": "image/tiff",
    ".webp": "image/webp",
    ".avi": "video/x-msvideo",
    ".mkv": "video/x-matroska",
    ".m4v": "video/mp4",
    ".mp4": "video/mp4",
    ".mpeg": "video/mpeg",
    ".mpg": "video/mpeg",
    ".ogv": "video/ogg",
    ".mov": "video/quicktime",
    ".qt": "video/quicktime",
    ".webm": "video/webm",
    ".json": "application/json",
    ".dtd": "application/xml-dtd",
    ".pdf": "application/pdf",
    ".xhtml": "application/xhtml+xml",
    ".xsl": "application/xslt+xml",
    ".xslt": "application/xslt+xml",
    ".eot": "application/vnd.ms-fontobject",
    ".otf": "font/otf",
    ".sfnt": "font/sfnt",
    ".ttc": "font/collection",
    ".ttf": "font/ttf",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
    ".conf": "text/plain",
    ".log": "text/plain",
    ".csv": "text/csv",
    ".rst": "text/x-rst",
    ".rtf": "text/rtf",
    ".ics": "text/calendar",
    ".md": "text/markdown;charset=utf-8",
    ".ico": "image/vnd.microsoft.icon",
    ".7z": "application/x-7z-compressed",
    ".bz2": "application/x-bzip2",
    ".gz": "application/gzip",
    ".rar": "application/vnd.rar",
    ".tar": "application/x-tar",
    ".tar.gz": "application/x-gtar-compressed",
    ".tgz": "application/x-gtar-compressed",
    ".xz": "application/x-xz",
    ".zip": "application/zip",
    ".zst": "application/zstd",
    ".bin": "application/octet-stream",
    ".class": "application/java-vm",
    ".dll": "application/x-msdos-program",
    ".exe": "application/x-msdos-program",
    ".img": "application/octet-stream",
    ".iso": "application/x-iso9660-image",
    ".jar": "application/java-archive",
    ".lha": "application/x-lha",
    ".lhz": "application/x-lzh",
    ".so": "application/octet-stream",
    ".torrent": "application/x-bittorrent",
    ".deb": "application/vnd.debian.binary-package",
    ".dmg": "application/x-apple-diskimage",
    ".rpm": "application/x-redhat-package-manager",
    ".sig": "application/pgp-signature",
    "README": "text/plain;charset=utf-8",
    "": "application/octet-stream",
}

DEFAULT_TYPES = MimeTable(_DEFAULT)
