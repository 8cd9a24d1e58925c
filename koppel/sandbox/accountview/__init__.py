"""AccountView.Net Web API v3 sandbox: OAuth2, companies, /accountviewdata on SQLite.

Decisions beyond the public record live in `assumptions`; see docs/connectors/accountview.md.
"""

from koppel.sandbox.accountview.sandbox import AccountViewSandbox

__all__ = ["AccountViewSandbox"]
