"""Tables, the engine and the named queries; imports nothing of bot/ or handlers/."""
