//! Files a configuration names (secrets, schemas, key sets), read with a size limit: a path
//! that turns out to be `/dev/zero` or a log file is a clear error, not a start-up that never
//! ends or exhausts memory.

use std::io::Read;
use std::path::Path;

/// The largest file a configuration may name. Real ones (a JWK set, a JSON Schema, a secret)
/// are a few kilobytes.
pub const MAX_NAMED_FILE_BYTES: u64 = 1024 * 1024;

/// The file's bytes, or an error when it cannot be read or is larger than
/// [`MAX_NAMED_FILE_BYTES`].
pub fn read_named_file(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(MAX_NAMED_FILE_BYTES + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_NAMED_FILE_BYTES {
        return Err(std::io::Error::other(format!(
            "larger than {MAX_NAMED_FILE_BYTES} bytes"
        )));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endless_file_is_an_error() {
        let error = read_named_file(Path::new("/dev/zero")).unwrap_err();
        assert!(error.to_string().contains("larger than 1048576 bytes"));
        assert!(read_named_file(Path::new("/nonexistent/file")).is_err());
    }
}
