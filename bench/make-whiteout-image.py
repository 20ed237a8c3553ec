#!/usr/bin/env python3
"""Writes the many-whiteout benchmark image as an OCI layout (uncompressed layers):
LAYERS layers of FILES small files each; every layer above the first also deletes 100
files of the layer below with whiteouts. Usage: make-whiteout-image.py DIR [LAYERS FILES]"""
import hashlib, io, json, os, sys, tarfile

out = sys.argv[1]
layers_n = int(sys.argv[2]) if len(sys.argv) > 2 else 20
files_n = int(sys.argv[3]) if len(sys.argv) > 3 else 2000
os.makedirs(f"{out}/blobs/sha256", exist_ok=True)

def put(data):
    d = hashlib.sha256(data).hexdigest()
    with open(f"{out}/blobs/sha256/{d}", "wb") as f:
        f.write(data)
    return "sha256:" + d

def entry(t, name, data=b"", kind=tarfile.REGTYPE, mode=0o644):
    i = tarfile.TarInfo(name)
    i.type, i.mode, i.mtime, i.size = kind, mode, 0, len(data)
    t.addfile(i, io.BytesIO(data) if data else None)

diff_ids, history = [], []
for l in range(layers_n):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as t:
        entry(t, f"l{l}/", kind=tarfile.DIRTYPE, mode=0o755)
        for i in range(files_n):
            entry(t, f"l{l}/f{i:05d}", f"layer {l} file {i}\n".encode() * 4)
        if l > 0:
            for i in range(100):
                entry(t, f"l{l-1}/.wh.f{i:05d}")
    diff_ids.append(put(buf.getvalue()))
    history.append({"created_by": f"layer {l}"})
sizes = {d: os.path.getsize(f"{out}/blobs/sha256/{d[7:]}") for d in diff_ids}
config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                     "rootfs": {"type": "layers", "diff_ids": diff_ids}, "history": history}).encode()
cd = put(config)
manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": len(config)},
    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": sizes[d]} for d in diff_ids]}).encode()
md = put(manifest)
with open(f"{out}/index.json", "w") as f:
    json.dump({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
               "digest": md, "size": len(manifest), "annotations": {"org.opencontainers.image.ref.name": "1"}}]}, f)
with open(f"{out}/oci-layout", "w") as f:
    f.write('{"imageLayoutVersion":"1.0.0"}')
