//! Arbitrary bytes as a layer: plain, and behind whatever compression their magic claims.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::io::Read;

fuzz_target!(|data: &[u8]| {
    let _ = pinnace::layer::LayerReader::new(data).visit(|_, r| {
        let mut sink = Vec::new();
        r.take(1 << 20).read_to_end(&mut sink).map(|_| ())
    });
    let digest = pinnace::oci::Digest::of(data);
    if let Ok((_, r)) = pinnace::layer::open_verified(data, digest, data.len() as u64, None) {
        let _ = pinnace::layer::LayerReader::new(r).visit(|_, _| Ok(()));
    }
});
