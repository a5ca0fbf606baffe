"""A Python gRPC client of aetherd, generated from proto/ with Debian's protoc and grpcio.

Proves that a client in another language reaches aetherd over its Unix socket with mTLS and reads
Aether's rich errors. Usage: client.py GEN_DIR SOCKET CA CERT KEY; prints one JSON object.
"""
import json
import sys

gen_dir, socket_path, ca, cert, key = sys.argv[1:6]
sys.path.insert(0, gen_dir)

import grpc  # noqa: E402
from aether.jobs.v1 import jobs_pb2, jobs_pb2_grpc  # noqa: E402
from google.rpc import error_details_pb2, status_pb2  # noqa: E402


def read(path):
    with open(path, "rb") as f:
        return f.read()


creds = grpc.ssl_channel_credentials(read(ca), read(key), read(cert))
# The server certificate names the daemon as a DNS SAN; over a Unix socket we say which name to expect.
channel = grpc.secure_channel("unix:" + socket_path, creds, options=[("grpc.ssl_target_name_override", "aetherd")])
out = {}

try:
    jobs_pb2_grpc.JobServiceStub(channel).GetJob(
        jobs_pb2.GetJobRequest(name="jobs/01aaaaaaaaaaaaaaaaaaaaaaaa"),
        timeout=10,
        metadata=[("x-aether-request-id", "python-1")],
    )
    out["get_job"] = "OK"
except grpc.RpcError as err:
    out["get_job"] = err.code().name
    out["request_id"] = dict(err.initial_metadata() or ()).get("x-aether-request-id")
    for k, v in err.trailing_metadata() or ():
        if k == "grpc-status-details-bin":
            st = status_pb2.Status.FromString(v)
            for d in st.details:
                if d.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                    info = error_details_pb2.ErrorInfo()
                    d.Unpack(info)
                    out["reason"] = info.reason
                    out["domain"] = info.domain
print(json.dumps(out))
