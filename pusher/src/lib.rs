//! The publisher CLI that pushes a worker release as OCI artifacts; filled by the publishing issue.
