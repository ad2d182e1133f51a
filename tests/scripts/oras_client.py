#!/usr/bin/env python3
"""A small command-line front for oras-py (PyPI `oras`), which has no CLI.

The Rust end-to-end tests (tests/tests/oras.rs, tests/tests/referrers.rs)
run it against a registry on 127.0.0.1 over plain HTTP. Every subcommand
prints ONE line of JSON on stdout as its last line; oras-py's own logging
goes to stderr.

    push  --registry HOST:PORT --target REPO:TAG --file PATH [--file PATH...]
          [--artifact-type TYPE] [--annotation KEY=VALUE...]
          [--subject-digest D --subject-media-type M --subject-size N]
          [--chunk-size BYTES]
    pull  --registry HOST:PORT --target REPO:TAG|REPO@DIGEST --outdir DIR
          [--username NAME]   (password from $ORAS_PASSWORD, e.g. a license key)
          [--no-retry]        (fail at the first refusal, without oras-py's backoff)
    tags  --registry HOST:PORT --repo REPO [--page-size N]
"""

import argparse
import json
import logging
import os
import sys

import oras.defaults
import oras.oci
import oras.provider


class ArtifactRegistry(oras.provider.Registry):
    """oras-py's registry client, plus the manifest `artifactType`.

    oras-py 0.2 builds the manifest itself and has no `artifactType`
    parameter; it hands the finished manifest to `upload_manifest`, so that
    is where the field is added (image-spec v1.1, "Guidelines for artifact
    usage").
    """

    def __init__(self, hostname, artifact_type=None):
        super().__init__(hostname=hostname, insecure=True)
        self.artifact_type = artifact_type

    def upload_manifest(self, manifest, container):
        if self.artifact_type:
            manifest["artifactType"] = self.artifact_type
        return super().upload_manifest(manifest, container)


def parse_annotations(pairs):
    annotations = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep:
            sys.exit(f"--annotation wants KEY=VALUE, got {pair!r}")
        annotations[key] = value
    return annotations


def cmd_push(args):
    registry = ArtifactRegistry(args.registry, artifact_type=args.artifact_type)
    subject = None
    if args.subject_digest:
        subject = oras.oci.Subject(
            mediaType=args.subject_media_type,
            digest=args.subject_digest,
            size=int(args.subject_size),
        )
    response = registry.push(
        target=f"{args.registry}/{args.target}",
        files=args.file,
        # The files live in a temporary directory, not under the cwd.
        disable_path_validation=True,
        manifest_annotations=parse_annotations(args.annotation),
        subject=subject,
        do_chunked=args.chunk_size is not None,
        chunk_size=args.chunk_size or oras.defaults.default_chunksize,
        quiet=True,
    )
    return {
        "status": response.status_code,
        "digest": response.headers.get("Docker-Content-Digest"),
        "location": response.headers.get("Location"),
        "oci_subject": response.headers.get("OCI-Subject"),
    }


def without_retries():
    """Makes oras-py give up at the first failed request.

    Its `do_request` is wrapped in `oras.decorator.retry`, which sleeps
    2 + 3**attempt seconds (3, 5, 11, 29, 83) before each of five retries
    of any exception, a refusal included: a test that expects a refusal
    would wait over two minutes for it. `functools.wraps` keeps the
    undecorated function as `__wrapped__`.
    """
    do_request = oras.provider.Registry.do_request
    oras.provider.Registry.do_request = getattr(do_request, "__wrapped__", do_request)


def cmd_pull(args):
    if args.no_retry:
        without_retries()
    registry = oras.provider.Registry(hostname=args.registry, insecure=True)
    password = os.environ.get("ORAS_PASSWORD")
    if password:
        # Sent to the registry's token service (its 401 challenge names
        # it), which answers a bearer token; never to anyone else.
        registry.auth.set_basic_auth(args.username, password)
    files = registry.pull(target=f"{args.registry}/{args.target}", outdir=args.outdir)
    return {"files": files}


def cmd_tags(args):
    registry = oras.provider.Registry(hostname=args.registry, insecure=True)
    container = registry.get_container(f"{args.registry}/{args.repo}")
    # A small page size makes oras-py follow the registry's `Link` headers.
    if args.page_size:
        container_tags_url = container.tags_url

        def paged_tags_url(N=None):
            return container_tags_url(N=args.page_size)

        container.tags_url = paged_tags_url
    return {"tags": registry.get_tags(container)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    push = sub.add_parser("push")
    push.add_argument("--registry", required=True)
    push.add_argument("--target", required=True)
    push.add_argument("--file", action="append", required=True)
    push.add_argument("--artifact-type")
    push.add_argument("--annotation", action="append")
    push.add_argument("--subject-digest")
    push.add_argument("--subject-media-type", default=oras.defaults.default_index_media_type)
    push.add_argument("--subject-size")
    push.add_argument("--chunk-size", type=int)

    pull = sub.add_parser("pull")
    pull.add_argument("--registry", required=True)
    pull.add_argument("--target", required=True)
    pull.add_argument("--outdir", required=True)
    pull.add_argument("--username", default="any")
    pull.add_argument("--no-retry", action="store_true")

    tags = sub.add_parser("tags")
    tags.add_argument("--registry", required=True)
    tags.add_argument("--repo", required=True)
    tags.add_argument("--page-size", type=int)

    args = parser.parse_args()
    logging.basicConfig(stream=sys.stderr, level=logging.INFO)
    result = {"push": cmd_push, "pull": cmd_pull, "tags": cmd_tags}[args.command](args)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
