//! The documented limits of the wire documents: sizes of whole documents,
//! lengths of text fields, numbers of list items. Readers refuse what
//! exceeds them, so a hostile or broken publisher cannot make the catalog,
//! a terminal or a web page show megabytes of text, and a reader never
//! spends more than a bounded effort on a document. The pusher checks the
//! same limits before it writes anything. Lengths are counted in Unicode
//! characters (code points), as JSON Schema's `maxLength` counts them;
//! document sizes in bytes of UTF-8.
//!
//! `docs/artifact-format.md` lists these values; the metadata JSON Schema
//! states the field limits as `maxLength` and `maxItems`.

/// Largest worker metadata document, in bytes. A real one is about 1 KiB;
/// 64 KiB leaves room for long dependency lists.
pub const METADATA_MAX_BYTES: usize = 64 * 1024;
/// Longest `name`.
pub const NAME_MAX_CHARS: usize = 100;
/// Longest `description` ("one or two sentences"; newlines and tabs are
/// allowed there and nowhere else).
pub const DESCRIPTION_MAX_CHARS: usize = 2_000;
/// Longest `implementation`, `build_system` and `source.type`.
pub const SHORT_TEXT_MAX_CHARS: usize = 64;
/// Longest `source.tag` and `source.branch` (git's own limit on a ref
/// component is 255 bytes).
pub const REF_MAX_CHARS: usize = 255;
/// Longest `source.url` and `pricing.purchase_url`.
pub const URL_MAX_CHARS: usize = 2_048;
/// Longest `install_path`.
pub const PATH_MAX_CHARS: usize = 1_024;
/// Longest `license` expression.
pub const LICENSE_MAX_CHARS: usize = 256;
/// Longest `version`: the version is also the OCI tag, whose grammar
/// allows 128 characters.
pub const VERSION_MAX_CHARS: usize = 128;
/// Longest entry of `depends`, `makedepends` and
/// `capabilities.supported_formats`.
pub const WORD_MAX_CHARS: usize = 128;
/// Most entries in `depends`, `makedepends` and
/// `capabilities.supported_formats`.
pub const LIST_MAX_ITEMS: usize = 100;

/// Largest catalog index document, in bytes. The catalog reads the
/// document whole, so it is bounded like any small blob it reads.
pub const CATALOG_MAX_BYTES: usize = 4 << 20;
/// Most workers listed in one catalog index.
pub const CATALOG_MAX_WORKERS: usize = 10_000;
/// Most versions listed for one worker in the catalog index.
pub const CATALOG_MAX_VERSIONS: usize = 1_000;
