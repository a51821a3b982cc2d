//! Partitioned event streams: which of `stream.partitions` streams a product's events go to,
//! and what those streams are called. A product's events always go to one partition, so they
//! stay in order; the function is stable (it is part of the contract with game servers, which
//! may compute it themselves: README.md shows it in JavaScript with a test vector).

/// The partition of `product_id` among `partitions`: FNV-1a (32-bit) of the id's UTF-8 bytes,
/// modulo `partitions`. Always 0 with one partition.
pub fn partition_of(product_id: &str, partitions: u32) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in product_id.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash % partitions.max(1)
}

/// The stream key of partition `index`: `name` itself when there is one partition (exactly the
/// single stream of an unpartitioned setup), else `<name>:<index>`, each in a hash slot of its
/// own on a Redis Cluster.
pub fn partition_stream(name: &str, partitions: u32, index: u32) -> String {
    if partitions <= 1 {
        name.to_owned()
    } else {
        format!("{name}:{index}")
    }
}

/// The stream key that `product_id`'s events go to.
pub fn stream_of(name: &str, partitions: u32, product_id: &str) -> String {
    partition_stream(name, partitions, partition_of(product_id, partitions))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test vector README.md gives game servers (FNV-1a 32-bit reference values).
    #[test]
    fn partitions_follow_fnv1a() {
        assert_eq!(partition_of("", 1 << 31), 0x811c_9dc5 % (1 << 31));
        assert_eq!(partition_of("a", u32::MAX), 0xe40c_292c);
        assert_eq!(partition_of("foobar", u32::MAX), 0xbf9c_f968);
        assert_eq!(partition_of("exrps", 8), 3);
        assert_eq!(partition_of("arena", 8), 0);
        assert_eq!(partition_of("игрок", 8), 1);
        for product in ["exrps", "arena", "x"] {
            assert_eq!(partition_of(product, 1), 0);
        }
    }

    #[test]
    fn one_partition_is_the_stream_itself() {
        assert_eq!(
            stream_of("game_event_stream", 1, "exrps"),
            "game_event_stream"
        );
        assert_eq!(
            stream_of("game_event_stream", 8, "exrps"),
            "game_event_stream:3"
        );
        assert_eq!(partition_stream("s", 4, 3), "s:3");
    }
}
