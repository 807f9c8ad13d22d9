"""Development tools: the Twilio simulator, the local dev stack, the embedded servers, the demo files.

Never part of a production install: the wheel and the Docker images leave this package out, and
the product packages (shared, services, workers) only import it lazily, inside `relance dev` and
`relance simulator`.
"""
