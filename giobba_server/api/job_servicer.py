"""JobService: cron jobs are the next milestone; until then every call says so."""

import grpc

from giobba_client._gen.giobba.v1 import job_service_pb2_grpc as js_grpc


class JobServicer(js_grpc.JobServiceServicer):
    """Inherits the generated UNIMPLEMENTED answers for every RPC."""

    def __init__(self) -> None:
        self.code = grpc.StatusCode.UNIMPLEMENTED
