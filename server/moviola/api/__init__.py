"""gRPC servicers: translate protos to domain calls and domain errors to status codes."""
