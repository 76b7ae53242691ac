"""What an operator sees: metrics, request ids, structured logs, traces, and the client's
address behind trusted proxies.

The middlewares, services and storage call narrow functions from here (``metrics.*``,
``context.current_request_id``); no handler formats a metric or a log line by hand.
"""
