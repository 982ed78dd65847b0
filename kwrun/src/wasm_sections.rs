//! Custom sections of a WebAssembly binary: the only part of the format `annotate` touches.
//!
//! A module is the 8-byte preamble followed by sections, each `id: u8`, `size: LEB128 u32`,
//! `body`. A custom section (id 0) body is a name (LEB128 length + UTF-8) and the payload. Custom
//! sections may appear anywhere, so appending one at the end keeps the module valid; readers use
//! the first section of a name, so annotate removes any older one first.

/// The 8-byte preamble: `\0asm` and version 1.
pub const PREAMBLE: [u8; 8] = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];

/// Errors of a malformed binary.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SectionError {
    /// Not a wasm module.
    #[error("not a WebAssembly module (missing the \\0asm version 1 preamble)")]
    Preamble,
    /// Truncated or inconsistent section.
    #[error("malformed WebAssembly section at byte {0}")]
    Malformed(usize),
}

/// One section: its id, the byte range of the whole section, and of its body.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Section {
    id: u8,
    whole: std::ops::Range<usize>,
    body: std::ops::Range<usize>,
}

fn read_leb_u32(bytes: &[u8], mut pos: usize) -> Option<(u32, usize)> {
    let mut value: u32 = 0;
    for shift in (0..35).step_by(7) {
        let byte = *bytes.get(pos)?;
        pos += 1;
        value |= u32::from(byte & 0x7f).checked_shl(shift)?;
        if byte & 0x80 == 0 {
            return Some((value, pos));
        }
    }
    None
}

fn write_leb_u32(out: &mut Vec<u8>, mut value: u32) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn sections(module: &[u8]) -> Result<Vec<Section>, SectionError> {
    if module.len() < PREAMBLE.len() || module[..PREAMBLE.len()] != PREAMBLE {
        return Err(SectionError::Preamble);
    }
    let mut pos = PREAMBLE.len();
    let mut found = Vec::new();
    while pos < module.len() {
        let start = pos;
        let id = module[pos];
        let (size, body_start) =
            read_leb_u32(module, pos + 1).ok_or(SectionError::Malformed(start))?;
        let end = body_start
            .checked_add(size as usize)
            .filter(|end| *end <= module.len())
            .ok_or(SectionError::Malformed(start))?;
        found.push(Section {
            id,
            whole: start..end,
            body: body_start..end,
        });
        pos = end;
    }
    Ok(found)
}

fn custom_name(module: &[u8], section: &Section) -> Option<(String, usize)> {
    if section.id != 0 {
        return None;
    }
    let (len, name_start) = read_leb_u32(module, section.body.start)?;
    let name_end = name_start
        .checked_add(len as usize)
        .filter(|end| *end <= section.body.end)?;
    let name = std::str::from_utf8(&module[name_start..name_end]).ok()?;
    Some((name.to_owned(), name_end))
}

/// The payload of the first custom section called `name`.
pub fn read_custom_section<'a>(
    module: &'a [u8],
    name: &str,
) -> Result<Option<&'a [u8]>, SectionError> {
    for section in sections(module)? {
        if let Some((found, data_start)) = custom_name(module, &section)
            && found == name
        {
            return Ok(Some(&module[data_start..section.body.end]));
        }
    }
    Ok(None)
}

/// The module without its custom sections called `name`, with one new such section at the end.
pub fn replace_custom_section(
    module: &[u8],
    name: &str,
    data: &[u8],
) -> Result<Vec<u8>, SectionError> {
    let mut out = Vec::with_capacity(module.len() + data.len() + name.len() + 16);
    out.extend_from_slice(&PREAMBLE);
    for section in sections(module)? {
        let same_name = custom_name(module, &section).is_some_and(|(found, _)| found == name);
        if !same_name {
            out.extend_from_slice(&module[section.whole]);
        }
    }
    let mut body = Vec::with_capacity(name.len() + data.len() + 5);
    write_leb_u32(&mut body, name.len() as u32);
    body.extend_from_slice(name.as_bytes());
    body.extend_from_slice(data);
    out.push(0);
    write_leb_u32(&mut out, body.len() as u32);
    out.extend_from_slice(&body);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `(module)` with a type section holding one `() -> ()` function type.
    fn tiny_module() -> Vec<u8> {
        let mut module = PREAMBLE.to_vec();
        module.extend_from_slice(&[0x01, 0x04, 0x01, 0x60, 0x00, 0x00]);
        module
    }

    #[test]
    fn leb128_round_trips_across_byte_boundaries() {
        for value in [0u32, 1, 127, 128, 300, 16_384, u32::MAX] {
            let mut out = Vec::new();
            write_leb_u32(&mut out, value);
            assert_eq!(read_leb_u32(&out, 0), Some((value, out.len())));
        }
    }

    #[test]
    fn an_appended_section_is_read_back_and_replaces_an_older_one() {
        let once =
            replace_custom_section(&tiny_module(), "io.kubewarden.metadata", b"{\"a\":1}").unwrap();
        assert_eq!(
            read_custom_section(&once, "io.kubewarden.metadata").unwrap(),
            Some(&b"{\"a\":1}"[..])
        );
        let big = vec![b'x'; 300];
        let twice = replace_custom_section(&once, "io.kubewarden.metadata", &big).unwrap();
        assert_eq!(
            read_custom_section(&twice, "io.kubewarden.metadata").unwrap(),
            Some(&big[..])
        );
        assert_eq!(&twice[..14], &tiny_module()[..14]);
        assert_eq!(
            sections(&twice)
                .unwrap()
                .iter()
                .filter(|s| s.id == 0)
                .count(),
            1
        );
    }

    #[test]
    fn other_custom_sections_are_kept() {
        let with_other = replace_custom_section(&tiny_module(), "producers", b"p").unwrap();
        let annotated =
            replace_custom_section(&with_other, "io.kubewarden.metadata", b"m").unwrap();
        assert_eq!(
            read_custom_section(&annotated, "producers").unwrap(),
            Some(&b"p"[..])
        );
        assert_eq!(read_custom_section(&annotated, "missing").unwrap(), None);
    }

    #[test]
    fn garbage_is_refused() {
        assert_eq!(
            read_custom_section(b"not wasm", "x"),
            Err(SectionError::Preamble)
        );
        let mut truncated = tiny_module();
        truncated.extend_from_slice(&[0x00, 0x10, 0x01]);
        assert_eq!(
            read_custom_section(&truncated, "x"),
            Err(SectionError::Malformed(14))
        );
    }
}
