"""The assistant: understanding short commands (intent and slots) and acting on them."""
