//! Two threads for one layer: one reads, hashes and decompresses the blob
//! (CPU), the other creates the files (waiting on the file system). The
//! decompressed bytes cross over in chunks through a bounded channel, so
//! the work overlaps and at most [`CHUNKS`] x [`CHUNK`] bytes are in flight.

use std::io::{self, Read};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

/// Bytes per chunk.
pub const CHUNK: usize = 256 * 1024;
/// Chunks in flight.
pub const CHUNKS: usize = 16;

/// A channel for one pipe: the producer's end and the reader's end.
pub fn pipe() -> (Sender, ChunkReader) {
    let (tx, rx) = sync_channel(CHUNKS);
    (
        Sender { tx },
        ChunkReader {
            rx,
            chunk: Vec::new(),
            pos: 0,
        },
    )
}

pub struct Sender {
    tx: SyncSender<Vec<u8>>,
}

impl Sender {
    /// Copy `from` into the pipe to its end. `Ok(false)` when the reader
    /// went away first (it stopped on an error of its own).
    pub fn pump(&self, from: &mut impl Read) -> io::Result<bool> {
        loop {
            let mut buf = vec![0u8; CHUNK];
            let mut n = 0;
            while n < CHUNK {
                match from.read(&mut buf[n..]) {
                    Ok(0) => break,
                    Ok(k) => n += k,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            if n == 0 {
                return Ok(true);
            }
            buf.truncate(n);
            if self.tx.send(buf).is_err() {
                return Ok(false);
            }
        }
    }
}

/// The reading end: the bytes sent, then end of file when the sender is
/// dropped.
pub struct ChunkReader {
    rx: Receiver<Vec<u8>>,
    chunk: Vec<u8>,
    pos: usize,
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.chunk.len() {
            match self.rx.recv() {
                Ok(c) => {
                    self.chunk = c;
                    self.pos = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.pos);
        buf[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_cross_in_order_and_a_gone_reader_stops_the_sender() {
        let data: Vec<u8> = (0..3 * CHUNK + 17).map(|i| (i % 251) as u8).collect();
        let (tx, mut rx) = pipe();
        let got = std::thread::scope(|s| {
            let d = &data;
            s.spawn(move || assert!(tx.pump(&mut &d[..]).unwrap()));
            let mut got = Vec::new();
            rx.read_to_end(&mut got).unwrap();
            got
        });
        assert_eq!(got, data);

        let (tx, rx) = pipe();
        drop(rx);
        assert!(!tx.pump(&mut &data[..]).unwrap());
    }
}
