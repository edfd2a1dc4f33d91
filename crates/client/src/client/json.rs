//! serde helpers: publish and call with any `Serialize` value, decode results and
//! publications into any `Deserialize` type. The payload is JSON text with either protocol
//! (with Protobuf it travels as bytes).

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Client, Subscription};
use crate::Error;
use crate::event::Publication;

fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(value).map_err(|e| Error::InvalidData(format!("JSON encoding: {e}")))
}

fn decode<T: DeserializeOwned>(data: &[u8]) -> Result<T, Error> {
    serde_json::from_slice(data).map_err(|e| Error::InvalidData(format!("JSON decoding: {e}")))
}

impl Client {
    /// [`Client::rpc`] with a serde request and result.
    ///
    /// ```no_run
    /// # async fn run(client: gyre_client::Client) -> Result<(), gyre_client::Error> {
    /// #[derive(serde::Deserialize)]
    /// struct Year {
    ///     year: u32,
    /// }
    /// let y: Year = client
    ///     .rpc_json("getCurrentYear", &serde_json::json!({}))
    ///     .await?;
    /// println!("{}", y.year);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// Those of [`Client::rpc`], and [`Error::InvalidData`] when the request does not
    /// serialize or the result does not deserialize into `R`.
    pub async fn rpc_json<T, R>(&self, method: &str, request: &T) -> Result<R, Error>
    where
        T: Serialize + ?Sized,
        R: DeserializeOwned,
    {
        let data = self.rpc(method, encode(request)?).await?;
        decode(&data)
    }

    /// [`Client::publish`] of a serde value.
    pub async fn publish_json<T: Serialize + ?Sized>(
        &self,
        channel: &str,
        value: &T,
    ) -> Result<(), Error> {
        self.publish(channel, encode(value)?).await
    }
}

impl Subscription {
    /// [`Subscription::publish`] of a serde value.
    pub async fn publish_json<T: Serialize + ?Sized>(&self, value: &T) -> Result<(), Error> {
        self.publish(encode(value)?).await
    }
}

impl Publication {
    /// The publication's data decoded from JSON.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidData`] when the data is not JSON of type `T`.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, Error> {
        decode(&self.data)
    }
}
