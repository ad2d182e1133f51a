//! What rbee-hive embeds to find, download, verify and install a worker; filled by the client issue.
