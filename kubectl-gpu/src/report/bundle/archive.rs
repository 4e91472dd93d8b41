//! Writing a [`Bundle`] as a reproducible `.tar.gz`: `manifest.json`
//! first, then every entry sorted; mode 0644, uid/gid 0, one mtime, and a
//! gzip header without time or name.

use super::{Bundle, BundleSummary};
use crate::error::{Error, Result};
use crate::report::GpuReport;
use flate2::{Compression, GzBuilder};
use std::io::Write;

impl Bundle {
    /// Writes the archive: `manifest.json` first, then every entry sorted.
    pub fn write<W: Write>(&self, report: &GpuReport, out: W, mtime: u64) -> Result<BundleSummary> {
        let io = |e: std::io::Error| Error::BundleWrite {
            reason: e.to_string(),
        };
        let manifest =
            serde_json::to_vec_pretty(&self.manifest(report)).map_err(|e| Error::BundleWrite {
                reason: e.to_string(),
            })?;
        let mut counter = Counting { inner: out, n: 0 };
        let mut uncompressed = 0u64;
        {
            let gz = GzBuilder::new()
                .mtime(0)
                .write(&mut counter, Compression::default());
            let mut tar = tar::Builder::new(gz);
            tar.mode(tar::HeaderMode::Deterministic);
            let mut put = |path: &str, data: &[u8]| -> Result<()> {
                let mut h = tar::Header::new_gnu();
                h.set_size(data.len() as u64);
                h.set_mode(0o644);
                h.set_uid(0);
                h.set_gid(0);
                h.set_mtime(mtime);
                h.set_entry_type(tar::EntryType::Regular);
                tar.append_data(&mut h, path, data).map_err(io)?;
                uncompressed += data.len() as u64;
                Ok(())
            };
            put("manifest.json", &manifest)?;
            for (path, e) in &self.entries {
                put(path, &e.data)?;
            }
            let gz = tar.into_inner().map_err(io)?;
            gz.finish().map_err(io)?;
        }
        Ok(BundleSummary {
            entries: self.entries.len() + 1,
            uncompressed_bytes: uncompressed,
            compressed_bytes: counter.n,
        })
    }
}

struct Counting<W> {
    inner: W,
    n: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.n += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
