"""The etcd v3 gRPC API of a Chainfire node.

* handle.py: `NodeHandle` / `WatchSession`, what the API needs from a
  running node (the runtime implements them);
* watch_hub.py: `WatchHub`, watch sessions over a node's watchable store;
* convert.py, convert_watch.py, convert_admin.py: etcd protobuf <-> core
  messages, both directions;
* errors.py: core errors -> gRPC status codes and etcd's error strings;
* servicers/: the grpc.aio servicers and `add_services`;
* server.py: `start_server`, a started grpc.aio server with all of them.

The protobuf modules live in real/etcdpb (generated from proto/).
"""

from real.api.handle import NodeHandle, WatchSession
from real.api.servicers import add_services
from real.api.watch_hub import HubSession, WatchHub

__all__ = ["HubSession", "NodeHandle", "WatchHub", "WatchSession", "add_services"]
