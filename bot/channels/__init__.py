"""One module per channel: each turns platform updates into Incoming and renders Replies."""
