//! Client-level settings changed at run time: token, connect data and headers. Each takes
//! effect on the next connect, as in centrifuge-js (`setToken`, `setData`, `setHeaders`).

use std::collections::BTreeMap;

use bytes::Bytes;

use super::Client;
use crate::Error;
use crate::options::{check_data, check_headers};
use crate::transport::Cmd;

impl Client {
    /// Replaces the connection token used by the next connect. A token callback
    /// ([`ClientOptions::get_token`](crate::ClientOptions::get_token)) still refreshes it
    /// when the server says it expired.
    ///
    /// ```no_run
    /// # fn run(client: gyre_client::Client, jwt: String) -> Result<(), gyre_client::Error> {
    /// client.set_token(jwt)?;
    /// client.set_data(&br#"{"room":"lobby"}"#[..])?;
    /// client.set_headers([("authorization", "Bearer abc")])?;
    /// client.disconnect(); // the current connection keeps the old values
    /// client.connect(); // this one sends the new ones
    /// # Ok(()) }
    /// ```
    pub fn set_token(&self, token: impl Into<String>) -> Result<(), Error> {
        self.cmd(Cmd::SetToken(token.into()))
    }

    /// Replaces the connect data sent by the next connect command.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidData`] for data that is not JSON with the JSON protocol;
    /// [`Error::Closed`] on a closed client.
    pub fn set_data(&self, data: impl Into<Bytes>) -> Result<(), Error> {
        let data = data.into();
        check_data(self.shared.protocol, &data)?;
        self.cmd(Cmd::SetData(data))
    }

    /// Replaces the WebSocket upgrade request's headers (those given with
    /// [`ClientOptions::header`](crate::ClientOptions::header)) for the next connect.
    ///
    /// # Errors
    ///
    /// [`Error::Configuration`] for a header name or value HTTP does not allow (nothing is
    /// changed then); [`Error::Closed`] on a closed client.
    pub fn set_headers<I, K, V>(&self, headers: I) -> Result<(), Error>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let headers: Vec<(String, String)> = headers
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        check_headers(&headers)?;
        self.cmd(Cmd::SetHeaders(headers))
    }

    /// Replaces the headers sent inside the next connect command (the command's `headers`
    /// field, Centrifugo v6 header emulation; see
    /// [`ClientOptions::connect_header`](crate::ClientOptions::connect_header)).
    pub fn set_connect_headers<I, K, V>(&self, headers: I) -> Result<(), Error>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let headers: BTreeMap<String, String> = headers
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        self.cmd(Cmd::SetConnectHeaders(headers))
    }
}
