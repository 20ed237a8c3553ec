//! Hand-written tar streams: raw 512-byte ustar headers with computed checksums, for the
//! inputs the `tar` crate refuses to write (`..`, absolute names, non-UTF-8 names, lying
//! sizes, bad checksums, missing end blocks).

/// Tar type flags.
pub const FILE: u8 = b'0';
pub const HARDLINK: u8 = b'1';
pub const SYMLINK: u8 = b'2';
pub const CHAR: u8 = b'3';
pub const BLOCK: u8 = b'4';
pub const DIR: u8 = b'5';
pub const FIFO: u8 = b'6';
pub const PAX: u8 = b'x';
pub const GNU_LONGNAME: u8 = b'L';

/// One header's fields.
#[derive(Clone, Debug)]
pub struct Hdr<'a> {
    pub name: &'a [u8],
    pub type_flag: u8,
    pub size: u64,
    pub link: &'a [u8],
    pub mode: u32,
}

impl<'a> Hdr<'a> {
    pub fn new(name: &'a [u8], type_flag: u8) -> Self {
        Hdr { name, type_flag, size: 0, link: b"", mode: if type_flag == DIR { 0o755 } else { 0o644 } }
    }
}

fn octal(field: &mut [u8], v: u64) {
    // width-1 octal digits, then NUL.
    let s = format!("{:0width$o}", v, width = field.len() - 1);
    assert!(s.len() < field.len(), "value {v} does not fit");
    field[..s.len()].copy_from_slice(s.as_bytes());
    field[s.len()] = 0;
}

/// Computes and stores the checksum of a header block.
pub fn set_checksum(h: &mut [u8; 512]) {
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| b as u32).sum();
    let s = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(s.as_bytes());
}

/// A ustar header block. Names longer than 100 bytes must go through
/// [`Tar::gnu_longname`] or [`Tar::pax`].
pub fn header(h: &Hdr) -> [u8; 512] {
    let mut b = [0u8; 512];
    let n = h.name.len().min(100);
    b[..n].copy_from_slice(&h.name[..n]);
    octal(&mut b[100..108], h.mode as u64);
    octal(&mut b[108..116], 0);
    octal(&mut b[116..124], 0);
    octal(&mut b[124..136], h.size);
    octal(&mut b[136..148], 0);
    b[156] = h.type_flag;
    let l = h.link.len().min(100);
    b[157..157 + l].copy_from_slice(&h.link[..l]);
    b[257..263].copy_from_slice(b"ustar\0");
    b[263..265].copy_from_slice(b"00");
    b[265..269].copy_from_slice(b"root");
    b[297..301].copy_from_slice(b"root");
    octal(&mut b[329..337], 0);
    octal(&mut b[337..345], 0);
    set_checksum(&mut b);
    b
}

/// A tar stream under construction.
#[derive(Default, Clone)]
pub struct Tar {
    pub buf: Vec<u8>,
}

impl Tar {
    pub fn new() -> Tar {
        Tar::default()
    }

    /// Current length (the offset of the next header).
    pub fn pos(&self) -> u64 {
        self.buf.len() as u64
    }

    /// Appends a raw block (or anything).
    pub fn raw(mut self, bytes: &[u8]) -> Tar {
        self.buf.extend_from_slice(bytes);
        self
    }

    fn pad(&mut self) {
        let rem = self.buf.len() % 512;
        if rem != 0 {
            self.buf.resize(self.buf.len() + 512 - rem, 0);
        }
    }

    /// An entry with its data (padded to a block).
    pub fn entry(mut self, h: Hdr, data: &[u8]) -> Tar {
        let h = Hdr { size: data.len() as u64, ..h };
        self.buf.extend_from_slice(&header(&h));
        self.buf.extend_from_slice(data);
        self.pad();
        self
    }

    pub fn file(self, name: &[u8], data: &[u8]) -> Tar {
        self.entry(Hdr::new(name, FILE), data)
    }

    pub fn dir(self, name: &[u8]) -> Tar {
        self.entry(Hdr::new(name, DIR), b"")
    }

    pub fn link(self, name: &[u8], type_flag: u8, target: &[u8]) -> Tar {
        self.entry(Hdr { link: target, ..Hdr::new(name, type_flag) }, b"")
    }

    /// A header claiming `size` bytes, followed by only `data` (no padding).
    pub fn lying_file(mut self, name: &[u8], size: u64, data: &[u8]) -> Tar {
        self.buf.extend_from_slice(&header(&Hdr { size, ..Hdr::new(name, FILE) }));
        self.buf.extend_from_slice(data);
        self
    }

    /// A GNU long-name header (`L`) carrying `name` for the next entry.
    pub fn gnu_longname(self, name: &[u8]) -> Tar {
        let mut data = name.to_vec();
        data.push(0);
        self.entry(Hdr::new(b"././@LongLink", GNU_LONGNAME), &data)
    }

    /// A PAX extended header (`x`) with `key=value` records for the next entry.
    pub fn pax(self, records: &[(&str, &[u8])]) -> Tar {
        let mut data = Vec::new();
        for (k, v) in records {
            // "LEN key=value\n", where LEN counts itself.
            let body = k.len() + v.len() + 3;
            let mut len = body + 1;
            while len != body + len.to_string().len() {
                len = body + len.to_string().len();
            }
            data.extend_from_slice(format!("{len} {k}=").as_bytes());
            data.extend_from_slice(v);
            data.push(b'\n');
        }
        self.entry(Hdr::new(b"PaxHeaders/x", PAX), &data)
    }

    /// `n` zero blocks.
    pub fn zeros(mut self, n: usize) -> Tar {
        self.buf.resize(self.buf.len() + 512 * n, 0);
        self
    }

    /// The standard end: two zero blocks.
    pub fn end(self) -> Tar {
        self.zeros(2)
    }

    pub fn bytes(self) -> Vec<u8> {
        self.buf
    }
}

#[test]
fn gnu_tar_reads_what_tarcraft_writes() {
    crate::require!("tar");
    let long = format!("dir/{}", "n".repeat(150));
    let bytes = Tar::new()
        .dir(b"dir/")
        .file(b"dir/a.txt", b"hello")
        .link(b"dir/s", SYMLINK, b"a.txt")
        .link(b"dir/h", HARDLINK, b"dir/a.txt")
        .gnu_longname(long.as_bytes())
        .file(b"placeholder", b"long")
        .pax(&[("path", b"dir/from-pax")])
        .file(b"placeholder2", b"pax")
        .end()
        .bytes();
    let d = crate::util::tempdir();
    let f = d.path().join("t.tar");
    std::fs::write(&f, &bytes).unwrap();
    let o = crate::util::run_ok(crate::util::cmd("tar").arg("-tvf").arg(&f));
    let names: Vec<&str> = o.stdout.lines().map(|l| l.split_whitespace().nth(5).unwrap()).collect();
    assert_eq!(names, ["dir/", "dir/a.txt", "dir/s", "dir/h", long.as_str(), "dir/from-pax"], "{}", o.stdout);
}
