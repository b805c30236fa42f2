"""What the server's WebSocket protocol and the socket handler share about shutting down."""

# The scope key of a WebSocket's turn state: {"idle": asyncio.Event, set between turns;
# "closing": True once the server stops}. The protocol puts the dict in the scope; the
# handler keeps "idle" up to date and refuses new turns once "closing" is set.
TURN_STATE = "avatarium.turn"
