"""The runtime: how the bot meets the world."""
