//! Arbitrary bytes as manifests, indexes and configs.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = pinnace::oci::RawManifest::new(data.to_vec(), None) {
        let _ = m.parse();
    }
    if let Ok(c) = pinnace::oci::RawConfig::new(data.to_vec()) {
        let _ = c.diff_ids();
    }
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = s.parse::<pinnace::oci::Digest>();
        let _ = s.parse::<pinnace::transport::ImageRef>();
    }
});
