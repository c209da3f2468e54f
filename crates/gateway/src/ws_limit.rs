//! Watching a relayed WebSocket for oversized frames. The gateway copies
//! bytes rather than re-framing messages (so frames and close codes pass
//! unchanged); this parser follows the client's frame headers (RFC 6455 §5.2)
//! across reads, without buffering payloads, and reports a frame whose
//! declared length is over the limit.

/// Follows frame boundaries in the client → upstream byte stream.
#[derive(Debug)]
pub struct FrameWatch {
    limit: u64,
    /// Payload bytes of the current frame still to pass.
    remaining: u64,
    /// A frame header split across reads.
    header: Vec<u8>,
}

/// The close frame a server sends for 1009 "message too big" (unmasked).
pub const CLOSE_TOO_BIG: &[u8] = &[
    0x88, 0x11, 0x03, 0xf1, b'f', b'r', b'a', b'm', b'e', b' ', b't', b'o', b'o', b' ', b'l', b'a',
    b'r', b'g', b'e',
];

impl FrameWatch {
    pub fn new(limit: u64) -> Self {
        Self {
            limit,
            remaining: 0,
            header: Vec::with_capacity(14),
        }
    }

    /// Feeds the next bytes; `Err(length)` when a frame declares a payload
    /// over the limit.
    pub fn feed(&mut self, mut bytes: &[u8]) -> Result<(), u64> {
        while !bytes.is_empty() {
            if self.remaining > 0 {
                let skip =
                    usize::try_from(self.remaining.min(bytes.len() as u64)).unwrap_or(bytes.len());
                self.remaining -= skip as u64;
                bytes = &bytes[skip..];
                continue;
            }
            self.header.push(bytes[0]);
            bytes = &bytes[1..];
            if let Some(length) = self.complete_header() {
                if length > self.limit {
                    return Err(length);
                }
                self.remaining = length;
                self.header.clear();
            }
        }
        Ok(())
    }

    /// The payload length once the buffered header is complete.
    fn complete_header(&self) -> Option<u64> {
        let h = &self.header;
        if h.len() < 2 {
            return None;
        }
        let masked = h[1] & 0x80 != 0;
        let mask_len = if masked { 4 } else { 0 };
        let (length, length_bytes) = match h[1] & 0x7f {
            126 => (None, 2),
            127 => (None, 8),
            n => (Some(u64::from(n)), 0),
        };
        if h.len() < 2 + length_bytes + mask_len {
            return None;
        }
        Some(length.unwrap_or_else(|| {
            h[2..2 + length_bytes]
                .iter()
                .fold(0u64, |acc, b| (acc << 8) | u64::from(*b))
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(len: usize) -> Vec<u8> {
        let mut f = vec![0x81];
        match len {
            0..=125 => f.push(0x80 | len as u8),
            126..=65535 => {
                f.push(0x80 | 126);
                f.extend_from_slice(&(len as u16).to_be_bytes());
            }
            _ => {
                f.push(0x80 | 127);
                f.extend_from_slice(&(len as u64).to_be_bytes());
            }
        }
        f.extend_from_slice(&[1, 2, 3, 4]);
        f.extend(std::iter::repeat_n(b'x', len));
        f
    }

    #[test]
    fn frames_under_the_limit_pass_in_any_split() {
        let stream: Vec<u8> = [frame(5), frame(300), frame(70_000), frame(0)].concat();
        for chunk in [1, 2, 3, 7, 13, 4096, stream.len()] {
            let mut watch = FrameWatch::new(100_000);
            for piece in stream.chunks(chunk) {
                assert_eq!(watch.feed(piece), Ok(()), "chunk {chunk}");
            }
            assert_eq!(watch.remaining, 0);
        }
    }

    #[test]
    fn an_oversized_frame_is_caught_from_its_header() {
        let stream: Vec<u8> = [frame(10), frame(200_000)].concat();
        for chunk in [1, 5, 1024] {
            let mut watch = FrameWatch::new(100_000);
            let outcome = stream
                .chunks(chunk)
                .map(|p| watch.feed(p))
                .find(Result::is_err);
            assert_eq!(outcome, Some(Err(200_000)), "chunk {chunk}");
        }
    }

    #[test]
    fn the_close_frame_says_1009() {
        assert_eq!(CLOSE_TOO_BIG[1] as usize, CLOSE_TOO_BIG.len() - 2);
        assert_eq!(
            u16::from_be_bytes([CLOSE_TOO_BIG[2], CLOSE_TOO_BIG[3]]),
            1009
        );
    }
}
