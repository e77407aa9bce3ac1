//! Opening event streams: a file, `-` for stdin, gzip detected by its magic
//! bytes whatever the file is called.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

use anyhow::Context;
use flate2::read::MultiGzDecoder;

pub struct EventInput {
    pub reader: Box<dyn BufRead + Send>,
    /// Bytes to read, for a progress bar; `None` for stdin and gzip.
    pub size: Option<u64>,
}

pub fn open_events(path: &Path) -> anyhow::Result<EventInput> {
    const BUFFER: usize = 1 << 20;
    if path == Path::new("-") {
        let stdin = BufReader::with_capacity(BUFFER, io::stdin());
        return Ok(EventInput {
            reader: maybe_gunzip(stdin)?.0,
            size: None,
        });
    }
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let size = file.metadata().ok().map(|m| m.len());
    let (reader, compressed) = maybe_gunzip(BufReader::with_capacity(BUFFER, file))?;
    Ok(EventInput {
        reader,
        size: size.filter(|_| !compressed),
    })
}

/// The reader, decompressing when the stream starts with gzip's magic
/// bytes; and whether it did.
fn maybe_gunzip<R: BufRead + Send + 'static>(
    mut r: R,
) -> anyhow::Result<(Box<dyn BufRead + Send>, bool)> {
    let head = r.fill_buf().context("cannot read the event stream")?;
    if head.starts_with(&[0x1f, 0x8b]) {
        let decoder: Box<dyn Read + Send> = Box::new(MultiGzDecoder::new(r));
        Ok((Box::new(BufReader::with_capacity(1 << 20, decoder)), true))
    } else {
        Ok((Box::new(r), false))
    }
}
