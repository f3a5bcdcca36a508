//! What a built Linux binary asks of the machine that runs it: its CPU and the glibc
//! symbol versions it needs (what `objdump -T` shows as `GLIBC_2.x`), read from the ELF
//! file itself so that no binutils are needed.

use std::fmt;

use object::read::elf::{ElfFile64, ProgramHeader};
use object::{Endianness, Object};

/// A glibc symbol version, `GLIBC_<major>.<minor>[.<patch>]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct GlibcVersion(pub u32, pub u32, pub u32);

impl GlibcVersion {
    /// Parses `GLIBC_2.34` (or `GLIBC_2.2.5`); `None` for other names such as
    /// `GLIBC_PRIVATE`.
    pub fn parse(name: &str) -> Option<Self> {
        let mut parts = name.strip_prefix("GLIBC_")?.split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        let patch = match parts.next() {
            Some(p) => p.parse().ok()?,
            None => 0,
        };
        parts
            .next()
            .is_none()
            .then_some(GlibcVersion(major, minor, patch))
    }
}

impl fmt::Display for GlibcVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GlibcVersion(major, minor, 0) => write!(f, "GLIBC_{major}.{minor}"),
            GlibcVersion(major, minor, patch) => write!(f, "GLIBC_{major}.{minor}.{patch}"),
        }
    }
}

/// What an executable needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Needs {
    /// The CPU: `object`'s name for it (`X86_64`, `Aarch64`).
    pub architecture: String,
    /// The glibc versions its dynamic symbols need, ascending, no duplicates.
    pub glibc: Vec<GlibcVersion>,
    /// Whether it names a program interpreter (a dynamic loader), i.e. is not static.
    pub dynamic: bool,
}

impl Needs {
    /// The newest glibc version needed; `None` for a binary that needs no glibc
    /// (statically linked).
    pub fn max_glibc(&self) -> Option<GlibcVersion> {
        self.glibc.last().copied()
    }
}

/// Reads a 64-bit ELF file's CPU and glibc version needs (its `.gnu.version_r`).
pub fn needs(data: &[u8]) -> Result<Needs, String> {
    let file = ElfFile64::<Endianness>::parse(data)
        .map_err(|e| format!("not a 64-bit ELF executable: {e}"))?;
    let endian = file.endian();
    let sections = file.elf_section_table();
    let mut glibc = Vec::new();
    let bad = |e: object::Error| format!("unreadable symbol versions: {e}");
    if let Some((mut verneeds, link)) = sections.gnu_verneed(endian, data).map_err(bad)? {
        let strings = sections.strings(endian, data, link).map_err(bad)?;
        while let Some((_, mut auxes)) = verneeds.next().map_err(bad)? {
            while let Some(aux) = auxes.next().map_err(bad)? {
                let name = String::from_utf8_lossy(aux.name(endian, strings).map_err(bad)?);
                if let Some(v) = GlibcVersion::parse(&name) {
                    glibc.push(v);
                }
            }
        }
    }
    glibc.sort();
    glibc.dedup();
    let dynamic = file
        .elf_program_headers()
        .iter()
        .any(|h| h.p_type(endian) == object::elf::PT_INTERP);
    Ok(Needs {
        architecture: format!("{:?}", file.architecture()),
        glibc,
        dynamic,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_and_order() {
        assert_eq!(
            GlibcVersion::parse("GLIBC_2.34"),
            Some(GlibcVersion(2, 34, 0))
        );
        assert_eq!(
            GlibcVersion::parse("GLIBC_2.2.5"),
            Some(GlibcVersion(2, 2, 5))
        );
        assert_eq!(GlibcVersion::parse("GLIBC_PRIVATE"), None);
        assert_eq!(GlibcVersion::parse("GCC_3.0"), None);
        assert!(GlibcVersion(2, 2, 5) < GlibcVersion(2, 17, 0));
        assert!(GlibcVersion(2, 34, 0) < GlibcVersion(2, 36, 0));
        assert_eq!(GlibcVersion(2, 34, 0).to_string(), "GLIBC_2.34");
        assert_eq!(GlibcVersion(2, 2, 5).to_string(), "GLIBC_2.2.5");
    }

    #[test]
    fn reads_the_needs_of_this_test_binary() {
        let exe = std::env::current_exe().unwrap();
        let needs = needs(&std::fs::read(exe).unwrap()).unwrap();
        assert_eq!(
            needs.architecture,
            if cfg!(target_arch = "x86_64") {
                "X86_64"
            } else {
                "Aarch64"
            }
        );
        // Any Rust binary linked against glibc needs some of it, e.g. GLIBC_2.2.5 on x86_64.
        let max = needs.max_glibc().expect("linked against glibc");
        assert!(needs.dynamic, "a glibc test binary has a loader");
        assert!(max >= GlibcVersion(2, 2, 5), "{needs:?}");
        assert!(needs.glibc.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn refuses_what_is_not_elf() {
        assert!(needs(b"#!/bin/sh\necho hi\n").is_err());
    }
}
