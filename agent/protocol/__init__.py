"""keywire's shared vocabulary: what the agent, the host CLI and training all speak.

errors (and the exit-code table), model parameters (`sl_params`, `frontend_settings`,
`detection`: the one table of detection settings and their limits), the TFLite file reader,
fleet messages with their wire form (`wire`, `messages`, `manifest`), MQTT topics and
manifest signing. It imports nothing from the agent, host or training packages.
"""

if __name__ != "keywire.protocol":  # the folder sits inside agent/ on disk: one import path only
    raise ImportError(f"import keywire.protocol, not {__name__} (a second copy would duplicate its classes)")
