"""The yardstick of bench/interactive_bench.py: a bare python-telegram-bot echo bot.

One `MessageHandler` that replies with the message's text, `concurrent_updates(32)`, no rate limiter,
no database: what python-telegram-bot itself costs on this machine. Polling or webhook, against the
base URL it is given (the bench's loopback fake). SIGTERM or SIGINT stops it.

    python -m bench.echo_bot --base-url http://127.0.0.1:PORT/bot --token TOKEN [--webhook-port N --secret S]
"""

from __future__ import annotations

import argparse
import os
from datetime import timedelta

from telegram import Update
from telegram.ext import Application, ContextTypes, MessageHandler, filters


async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Reply with the message's text."""
    message = update.effective_message
    if message is not None:
        await message.reply_text(message.text or "ok")


def main() -> None:
    """Run the echo bot until signalled."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])  # -OO: no __doc__
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--webhook-port", type=int, default=0, help="listen for webhook POSTs (0: poll)")
    parser.add_argument("--secret", default="")
    args = parser.parse_args()
    os.environ.setdefault("PTB_TIMEDELTA", "1")
    application = (
        Application.builder().token(args.token).base_url(args.base_url).concurrent_updates(32).build()
    )
    application.add_handler(MessageHandler(filters.ALL, echo))
    if args.webhook_port:
        application.run_webhook(
            listen="127.0.0.1",
            port=args.webhook_port,
            url_path="telegram",
            secret_token=args.secret or None,
            webhook_url=f"https://127.0.0.1:{args.webhook_port}/telegram",
        )
    else:
        application.run_polling(timeout=timedelta(seconds=30))


if __name__ == "__main__":
    main()
