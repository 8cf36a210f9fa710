"""MCP: the agent surface — the `nda` tools served over the Model Context Protocol.

In: tool calls from an MCP client (official `mcp` SDK). Out: JSON results.
`server.build_server` makes the server; `nda mcp` serves it on stdio.
"""
