"""Helpers of the QEMU test-image builder (firmware/image.py) and runner (firmware/qemu_test.py)."""
