"""The asyncio runtime serving real etcd clients (lands with the real-runtime issue)."""
