"""Whole-fleet coverage: discover workspaces and namespaces per region and account.

`config` holds the `discover:`/`accounts:` models, `foasconsole` and `sts` the two management
APIs (RPC style, signed like GetEvents), `discovery` the cached target list, and `clients`
which Flink client (region endpoint, account credentials) serves which target.
"""
