"""Remote Desktop (MS-RDPBCGR) server side: sans-IO codecs and state machine, Twisted adapter."""
