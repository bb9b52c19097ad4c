include $(sort $(wildcard $(BR2_EXTERNAL_EMBERD_PATH)/package/*/*.mk))
