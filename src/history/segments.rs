//! Segment files: a product's history moved out of Redis to disk. A segment is the zstd
//! frames of consecutive chunks, one after the other, in
//! `<segments_dir>/<product>/<first id>_<last id>.jsonl.zst` (the product id encoded as in key
//! names); `zstd -dc` turns it back into the JSON lines. `stats-tracker history export`
//! writes them (durably, then drops the chunks from Redis); `rebuild` reads them first.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::{ChunkCursor, HistoryError, decode_frames, split_chunk};
use crate::core::event::RawEntry;
use crate::core::ids::ProductId;
use crate::core::keys::encode_segment;
use crate::core::store::Store;
use crate::workers::plan::compare_ids;

/// One segment file and the ids it spans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub path: PathBuf,
    pub first: String,
    pub last: String,
}

/// The directory of `product`'s segments.
pub fn product_dir(dir: &Path, product: &ProductId) -> PathBuf {
    dir.join(encode_segment(product.as_str()))
}

/// `product`'s segment files, oldest first (none when the directory does not exist).
pub fn list(dir: &Path, product: &ProductId) -> Result<Vec<Segment>, HistoryError> {
    let dir = product_dir(dir, product);
    let failed = |error: std::io::Error| HistoryError::Segment {
        path: dir.display().to_string(),
        error: error.to_string(),
    };
    let reader = match std::fs::read_dir(&dir) {
        Ok(reader) => reader,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(failed(error)),
    };
    let mut segments = Vec::new();
    for item in reader {
        let path = item.map_err(failed)?.path();
        let Some(name) = path.file_name().and_then(|name| name.to_str()) else {
            continue;
        };
        let Some((first, last)) = name
            .strip_suffix(".jsonl.zst")
            .and_then(|span| span.split_once('_'))
        else {
            continue;
        };
        segments.push(Segment {
            first: first.to_owned(),
            last: last.to_owned(),
            path: path.clone(),
        });
    }
    segments.sort_by(|a, b| compare_ids(&a.first, &b.first));
    Ok(segments)
}

/// The entries of one segment file.
pub fn read(segment: &Segment) -> Result<Vec<RawEntry>, HistoryError> {
    let bytes = std::fs::read(&segment.path).map_err(|error| HistoryError::Segment {
        path: segment.path.display().to_string(),
        error: error.to_string(),
    })?;
    decode_frames(&bytes).map_err(|error| HistoryError::Segment {
        path: segment.path.display().to_string(),
        error: error.to_string(),
    })
}

/// What an export moved.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Exported {
    pub file: Option<PathBuf>,
    pub chunks: u64,
    pub entries: u64,
    pub bytes: u64,
}

/// Takes the exported chunks off the head of the list, if nothing else took chunks since
/// they were read: `KEYS` list, dropped, kept, exported; `ARGV` the first chunk's absolute
/// index, how many, their entries, the last id. 1 when dropped.
const DROP_EXPORTED: &str = r"
if tonumber(redis.call('GET', KEYS[2]) or '0') ~= tonumber(ARGV[1]) then return 0 end
local n = tonumber(ARGV[2])
redis.call('LTRIM', KEYS[1], n, -1)
redis.call('INCRBY', KEYS[2], n)
redis.call('DECRBY', KEYS[3], ARGV[3])
redis.call('SET', KEYS[4], ARGV[4])
return 1
";

/// Moves `product`'s oldest chunks (all, or those whose entries are at or before `before`)
/// into one new segment file under `dir`: written and synced to disk first, then dropped
/// from Redis. Interrupted, it leaves either nothing or a file whose chunks are also still
/// in Redis (the next export writes them again under the same name).
pub async fn export(
    store: &Store,
    product: &ProductId,
    dir: &Path,
    before: Option<&str>,
) -> Result<Exported, HistoryError> {
    let keys = store.keys().product(product);
    let mut conn = store.connection();
    let mut cursor = ChunkCursor::at_head(keys.clone());
    let mut frames: Vec<u8> = Vec::new();
    let (mut chunks, mut entries) = (0u64, 0u64);
    let mut span: Option<(String, String)> = None;
    let mut start = None;
    'pages: loop {
        let page = cursor.next_page(&mut conn, 64).await?;
        if page.is_empty() {
            break;
        }
        if start.is_none() {
            start = cursor.position().map(|end| end - page.len() as u64);
        }
        for chunk in &page {
            let (header, frame) = split_chunk(chunk)?;
            if before.is_some_and(|before| compare_ids(&header.last, before).is_gt()) {
                break 'pages;
            }
            frames.extend_from_slice(frame);
            chunks += 1;
            entries += header.count;
            let first = span
                .as_ref()
                .map_or(header.first.clone(), |(first, _)| first.clone());
            span = Some((first, header.last.clone()));
        }
    }
    let (Some((first, last)), Some(start)) = (span, start) else {
        return Ok(Exported::default());
    };
    let target_dir = product_dir(dir, product);
    let path = target_dir.join(format!("{first}_{last}.jsonl.zst"));
    let io = |error: std::io::Error| HistoryError::Segment {
        path: path.display().to_string(),
        error: error.to_string(),
    };
    std::fs::create_dir_all(&target_dir).map_err(io)?;
    let partial = target_dir.join(format!(".{first}_{last}.partial"));
    {
        let mut file = std::fs::File::create(&partial).map_err(io)?;
        file.write_all(&frames).map_err(io)?;
        file.sync_all().map_err(io)?;
    }
    std::fs::rename(&partial, &path).map_err(io)?;
    std::fs::File::open(&target_dir)
        .and_then(|dir| dir.sync_all())
        .map_err(io)?;
    let script = redis::Script::new(DROP_EXPORTED);
    let mut invocation = script.prepare_invoke();
    invocation
        .key(keys.events())
        .key(keys.events_dropped())
        .key(keys.events_kept())
        .key(keys.events_exported())
        .arg(start)
        .arg(chunks)
        .arg(entries)
        .arg(&last);
    let dropped: i64 = store.invoke(&invocation).await?;
    if dropped != 1 {
        return Err(HistoryError::Incomplete(format!(
            "history chunks were trimmed while exporting; {} holds them and can be deleted",
            path.display()
        )));
    }
    Ok(Exported {
        file: Some(path),
        chunks,
        entries,
        bytes: frames.len() as u64,
    })
}
