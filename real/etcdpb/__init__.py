"""Generated protobuf and gRPC modules of etcd's v3 API (packages mvccpb,
authpb, etcdserverpb), from proto/ by generate.py. Do not edit the
`*_pb2*` files: change proto/ and run `python real/etcdpb/generate.py`.

The descriptors register etcd's own package and message names in
protobuf's default pool, so this package cannot be imported in the same
process as another copy of etcd's protos (such as the `etcd3` client's):
run such a client in a separate process.
"""
