//! The `transport` error mode: an API error becomes the call's GRPC status, with the API error
//! itself attached as a status detail (`google.rpc.Status` carrying a packed
//! `centrifugal.centrifugo.api.Error`), as Centrifugo's clients expect.

use gyre_protocol::ErrorCode;
use prost::Message as _;
use tonic::{Code, Status};

use super::pb;

/// Upstream's API error 113 (conflict), which has no client protocol error code.
const CONFLICT: u32 = 113;

/// `google.protobuf.Any`.
#[derive(Clone, PartialEq, prost::Message)]
struct Any {
    #[prost(string, tag = "1")]
    type_url: String,
    #[prost(bytes = "vec", tag = "2")]
    value: Vec<u8>,
}

/// `google.rpc.Status`, the message of the `grpc-status-details-bin` trailer.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
    #[prost(message, repeated, tag = "3")]
    details: Vec<Any>,
}

/// The GRPC code of an API error code (Centrifugo's mapping).
pub(crate) fn grpc_code(code: u32) -> Code {
    match ErrorCode::from_code(code) {
        Some(ErrorCode::UnknownChannel | ErrorCode::MethodNotFound) => Code::NotFound,
        Some(ErrorCode::BadRequest | ErrorCode::NotAvailable) => Code::InvalidArgument,
        Some(ErrorCode::UnrecoverablePosition) => Code::OutOfRange,
        None if code == CONFLICT => Code::AlreadyExists,
        _ => Code::Internal,
    }
}

/// The status a failed call ends with in the `transport` error mode.
pub(crate) fn transport_status(code: u32, message: &str) -> Status {
    let grpc = grpc_code(code);
    let error = pb::Error {
        code,
        message: message.to_owned(),
    };
    let details = RpcStatus {
        code: grpc as i32,
        message: message.to_owned(),
        details: vec![Any {
            type_url: "type.googleapis.com/centrifugal.centrifugo.api.Error".to_owned(),
            value: error.encode_to_vec(),
        }],
    };
    Status::with_details(grpc, message, details.encode_to_vec().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_centrifugo() {
        assert_eq!(grpc_code(102), Code::NotFound);
        assert_eq!(grpc_code(104), Code::NotFound);
        assert_eq!(grpc_code(107), Code::InvalidArgument);
        assert_eq!(grpc_code(108), Code::InvalidArgument);
        assert_eq!(grpc_code(112), Code::OutOfRange);
        assert_eq!(grpc_code(113), Code::AlreadyExists);
        assert_eq!(grpc_code(100), Code::Internal);
    }

    #[test]
    fn the_api_error_rides_in_the_details() {
        let status = transport_status(102, "unknown channel");
        let decoded = RpcStatus::decode(status.details()).expect("decodes");
        assert_eq!(decoded.code, Code::NotFound as i32);
        let error = pb::Error::decode(decoded.details[0].value.as_slice()).expect("decodes");
        assert_eq!(error.code, 102);
    }
}
