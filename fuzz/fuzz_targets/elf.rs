//! Arbitrary bytes as an ELF file and as an ld.so.cache.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = pinnace::elf::inspect(data);
    let _ = pinnace::elf::LdCache::parse(data);
});
