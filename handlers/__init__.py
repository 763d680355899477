"""What the bot does in reaction to a message or a clock tick; knows no channel."""
