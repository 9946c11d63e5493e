"""Independent reference decodes for the image and RecordIO tests (run with /usr/bin/python3).

  rec DIR OUT KEY...   parse DIR/train.idx and train.rec with struct; write OUT/labels.txt
                       ("key label" per image record of the header's range) and OUT/<key>.rgb
                       (PIL decode, RGB, HWC bytes) for each KEY.
  pgm FILE SIDE OUT    decode FILE with PIL; write OUT.rgb (grey copied to 3 channels) and
                       OUT.resized.rgb (torch bilinear, align_corners=False, no antialias, rounded).
"""
import io
import struct
import sys

import numpy as np
from PIL import Image

MAGIC = 0xCED7230A


def read_record(rec, offset):
    magic, lrec = struct.unpack_from("<II", rec, offset)
    assert magic == MAGIC, hex(magic)
    assert lrec >> 29 == 0, "multi-part records are not expected here"
    length = lrec & ((1 << 29) - 1)
    payload = rec[offset + 8 : offset + 8 + length]
    flag, label, _id, _id2 = struct.unpack_from("<IfQQ", payload, 0)
    labels = struct.unpack_from("<%df" % flag, payload, 24) if flag else ()
    return flag, label, labels, payload[24 + 4 * flag :]


def rec_command(folder, out, keys):
    with open(folder + "/train.rec", "rb") as f:
        rec = f.read()
    offsets = {}
    with open(folder + "/train.idx") as f:
        for line in f:
            if line.strip():
                k, o = line.split("\t")
                offsets[int(k)] = int(o)
    flag, _, labels, _ = read_record(rec, offsets[0])
    assert flag > 0
    with open(out + "/labels.txt", "w") as f:
        for key in range(1, int(labels[0])):
            flag, label, extra, _ = read_record(rec, offsets[key])
            f.write("%d %d\n" % (key, int(extra[0] if flag else label)))
    for key in keys:
        _, _, _, image = read_record(rec, offsets[key])
        rgb = np.asarray(Image.open(io.BytesIO(image)).convert("RGB"), dtype=np.uint8)
        rgb.tofile("%s/%d.rgb" % (out, key))


def pgm_command(path, side, out):
    import torch

    grey = np.asarray(Image.open(path), dtype=np.uint8)
    assert grey.ndim == 2
    rgb = np.repeat(grey[:, :, None], 3, axis=2)
    rgb.tofile(out + ".rgb")
    t = torch.from_numpy(rgb.astype(np.float32)).permute(2, 0, 1)[None]
    r = torch.nn.functional.interpolate(t, size=(side, side), mode="bilinear", align_corners=False)
    r = r[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()
    r.tofile(out + ".resized.rgb")


if __name__ == "__main__":
    if sys.argv[1] == "rec":
        rec_command(sys.argv[2], sys.argv[3], [int(k) for k in sys.argv[4:]])
    elif sys.argv[1] == "pgm":
        pgm_command(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    else:
        raise SystemExit("unknown command " + sys.argv[1])
