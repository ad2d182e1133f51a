//! The rbee-facing catalog HTTP API (legacy /workers and /v1 routes) over any OCI registry; filled by the catalog issue.
