//! The request-response codec of our two protocols: one frame per request
//! and per response, a 4-byte big-endian length then the body. The length is
//! checked against the protocol's named bound before anything is allocated.
//! Bodies are opaque here; `protocol` encodes and decodes them.

use std::io;

use async_trait::async_trait;
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;

use crate::metrics::{add, Metrics};
use crate::protocol::Protocol;

/// Length-prefixed, size-bounded frames for one protocol.
#[derive(Clone, Debug)]
pub struct FrameCodec {
    protocol: Protocol,
    metrics: Metrics,
}

impl FrameCodec {
    /// A codec for `protocol`, counting bytes into `metrics`.
    pub(crate) fn new(protocol: Protocol, metrics: Metrics) -> Self {
        FrameCodec { protocol, metrics }
    }

    fn count_in(&self, n: usize) {
        let c = self.metrics.counters();
        match self.protocol {
            // Snapshot traffic counts as sync traffic.
            Protocol::Sync | Protocol::Snapshot => add(&c.sync_bytes_in, n),
            Protocol::RoundState => add(&c.round_state_bytes_in, n),
        }
    }

    fn count_out(&self, n: usize) {
        let c = self.metrics.counters();
        match self.protocol {
            Protocol::Sync | Protocol::Snapshot => add(&c.sync_bytes_out, n),
            Protocol::RoundState => add(&c.round_state_bytes_out, n),
        }
    }
}

/// Reads one frame of at most `limit` bytes.
pub(crate) async fn read_frame<T: AsyncRead + Unpin + Send>(
    io: &mut T,
    limit: usize,
) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    io.read_exact(&mut len).await?;
    let len = usize::try_from(u32::from_be_bytes(len))
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "frame length overflows"))?;
    if len > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes exceeds the limit of {limit}"),
        ));
    }
    let mut body = vec![0u8; len];
    io.read_exact(&mut body).await?;
    Ok(body)
}

/// Writes one frame of at most `limit` bytes.
pub(crate) async fn write_frame<T: AsyncWrite + Unpin + Send>(
    io: &mut T,
    body: &[u8],
    limit: usize,
) -> io::Result<()> {
    if body.len() > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("frame of {} bytes exceeds the limit of {limit}", body.len()),
        ));
    }
    let len = u32::try_from(body.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "frame too long"))?;
    io.write_all(&len.to_be_bytes()).await?;
    io.write_all(body).await?;
    io.close().await
}

#[async_trait]
impl libp2p::request_response::Codec for FrameCodec {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = Vec<u8>;

    async fn read_request<T>(&mut self, _: &Self::Protocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        let body = read_frame(io, self.protocol.request_bytes_max()).await?;
        self.count_in(body.len() + 4);
        Ok(body)
    }

    async fn read_response<T>(&mut self, _: &Self::Protocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        let body = read_frame(io, self.protocol.response_bytes_max()).await?;
        self.count_in(body.len() + 4);
        Ok(body)
    }

    async fn write_request<T>(
        &mut self,
        _: &Self::Protocol,
        io: &mut T,
        req: Vec<u8>,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &req, self.protocol.request_bytes_max()).await?;
        self.count_out(req.len() + 4);
        Ok(())
    }

    async fn write_response<T>(
        &mut self,
        _: &Self::Protocol,
        io: &mut T,
        res: Vec<u8>,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &res, self.protocol.response_bytes_max()).await?;
        self.count_out(res.len() + 4);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::io::Cursor;

    #[test]
    fn frames_round_trip_and_refuse_oversize_lengths() {
        futures::executor::block_on(async {
            let mut buf = Cursor::new(Vec::new());
            write_frame(&mut buf, b"hello", 16).await.unwrap();
            let mut read = Cursor::new(buf.into_inner());
            assert_eq!(read_frame(&mut read, 16).await.unwrap(), b"hello");
            // A length prefix claiming 4 GiB is refused before allocating.
            let mut huge = Cursor::new(vec![0xff, 0xff, 0xff, 0xff, 1, 2, 3]);
            assert!(read_frame(&mut huge, 1024).await.is_err());
            // A truncated body is an error, not a hang or a panic.
            let mut short = Cursor::new(vec![0, 0, 0, 10, 1, 2]);
            assert!(read_frame(&mut short, 1024).await.is_err());
            let mut out = Cursor::new(Vec::new());
            assert!(write_frame(&mut out, &[0; 17], 16).await.is_err());
        });
    }
}
