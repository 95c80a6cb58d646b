"""A Silicon Labs BRD2601 (or the board emulator) beside the agent, over serial.

`frame` is the wire codec (COBS + CRC-32), `messages` the typed protocol messages,
`link` the supervised serial link, `component` wires a board into the agent
(detect mode: relayed detections; stream mode: the board is the audio source).
The protocol is specified in firmware/PROTOCOL.md.
"""
