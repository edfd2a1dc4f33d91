//! The connect of a unidirectional transport: the connect request comes with the HTTP request
//! (bare JSON, not a command), the result goes out as a connect push, and a refused connect
//! ends the connection with a disconnect (upstream's mapping of error codes), since the client
//! has no reply to read.

use gyre_protocol::{
    Connect, ConnectRequest, ConnectResult, Disconnect, ErrorCode, ProtocolError, Push,
};

use super::Session;

/// The disconnect a unidirectional client gets for a refused connect.
fn disconnect_for(error: &ProtocolError) -> Disconnect {
    match error {
        ProtocolError::Disconnect(d) => d.clone(),
        ProtocolError::Reply(e) => match ErrorCode::from_code(e.code) {
            Some(ErrorCode::Expired | ErrorCode::TokenExpired) => Disconnect::EXPIRED,
            Some(ErrorCode::TooManyRequests) => Disconnect::TOO_MANY_REQUESTS,
            Some(ErrorCode::PermissionDenied) => Disconnect::PERMISSION_DENIED,
            _ => Disconnect::SERVER_ERROR,
        },
    }
}

impl Session {
    /// Handles the connect request a unidirectional transport handed over (`null` is an
    /// empty request, as upstream).
    pub(super) async fn uni_connect(&mut self, frame: &[u8]) {
        match serde_json::from_slice::<Option<ConnectRequest>>(frame) {
            Ok(req) => self.handle_connect(0, req.unwrap_or_default()).await,
            Err(err) => {
                tracing::debug!(client = %self.handle.client, "malformed connect request: {err}");
                self.close(Disconnect::BAD_REQUEST);
            }
        }
    }

    /// Answers a unidirectional connect: a connect push, or the disconnect.
    pub(super) fn answer_uni_connect(&mut self, result: Result<ConnectResult, ProtocolError>) {
        match result {
            Ok(r) => self.push_push(Push {
                connect: Some(Connect {
                    client: r.client,
                    version: r.version,
                    data: r.data,
                    subs: r.subs,
                    expires: r.expires,
                    ttl: r.ttl,
                    ping: r.ping,
                    pong: r.pong,
                    session: r.session,
                    node: r.node,
                    time: r.time,
                }),
                ..Default::default()
            }),
            Err(error) => self.close(disconnect_for(&error)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_connects_map_to_upstream_disconnects() {
        let code = |e: ErrorCode| disconnect_for(&e.into()).code;
        assert_eq!(code(ErrorCode::TokenExpired), 3005);
        assert_eq!(code(ErrorCode::PermissionDenied), 3507);
        assert_eq!(code(ErrorCode::TooManyRequests), 3013);
        assert_eq!(code(ErrorCode::Internal), 3004);
        assert_eq!(disconnect_for(&Disconnect::INVALID_TOKEN.into()).code, 3500);
    }
}
