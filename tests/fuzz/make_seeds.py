"""Seed corpora for the fuzzers, from the shared data: python3 make_seeds.py SHARED_DIR OUT.

Writes OUT/<fuzzer>/<name> files. Standard library only."""
import os
import struct
import sys

shared, out = sys.argv[1], sys.argv[2]
kz25 = os.path.join(shared, "data", "kz25")


def write(fuzzer, name, data):
    os.makedirs(os.path.join(out, fuzzer), exist_ok=True)
    with open(os.path.join(out, fuzzer, name), "wb") as f:
        f.write(data)


rec = open(os.path.join(kz25, "train.rec"), "rb").read()
offsets = {}
for line in open(os.path.join(kz25, "train.idx")):
    if line.strip():
        k, o = line.split("\t")
        offsets[int(k)] = int(o)

# A small insightface layout: header (images [1, 3), identities [3, 4)), two images, one identity.
keys = [0, 1, 2]
ends = sorted(offsets.values())


def record(key):
    start = offsets[key]
    return rec[start : min(o for o in ends if o > start)]


header = struct.pack("<IIIfQQff", 0xCED7230A, 32, 2, 0.0, 0, 0, 3.0, 4.0)
identity = struct.pack("<IIIfQQff", 0xCED7230A, 32, 2, 0.0, 3, 0, 1.0, 3.0)
body = header + record(1) + record(2) + identity
idx, pos = [], 0
for key, part in zip([0, 1, 2, 3], [header, record(1), record(2), identity]):
    idx.append("%d\t%d\n" % (key, pos))
    pos += len(part)
idx_text = "".join(idx).encode()
write("fuzz_recordio", "stream", b"\x00" + body)
write("fuzz_recordio", "indexed", b"\x01" + struct.pack("<H", len(idx_text)) + idx_text + body)
write("fuzz_recordio", "indexed_property", b"\x02" + struct.pack("<H", len(idx_text)) + idx_text + body)
# A multi-part record: the magic at an aligned offset inside the payload.
payload = struct.pack("<IfQQ", 0, 1.0, 1, 0) + struct.pack("<I", 0xCED7230A) + b"tail"
parts = (struct.pack("<II", 0xCED7230A, 1 << 29 | 24) + payload[:24]
         + struct.pack("<II", 0xCED7230A, 3 << 29 | 4) + b"tail")
write("fuzz_recordio", "multipart", b"\x00" + parts)

jpeg = record(1)[8 + 24 :]
write("fuzz_image_codec", "face.jpg", jpeg)
write("fuzz_image_codec", "face.pgm", open(os.path.join(shared, "data", "orl", "s1", "1.pgm"), "rb").read())
write("fuzz_image_codec", "tiny.ppm", b"P6\n# c\n2 1\n255\n" + bytes(range(6)))
write("fuzz_image_codec", "tiny16.pgm", b"P5 2 1 1000\n\x03\xe8\x01\xf4")

# Pickles (fuzz_pickle): the start of a real .bin, bytes and bools at every protocol, a
# Python 2 style str pickle, and numpy arrays as numpy 1.24 pickles them (hex, as numpy is
# not needed to run this script).
import pickle  # noqa: E402

raw = open(os.path.join(kz25, "test600.bin"), "rb").read()
bin_head = raw[:2] + raw[11:4096]  # PROTO, then the first images without the FRAME opcode
write("fuzz_pickle", "test600_head", bin_head)
for p in (2, 3, 4, 5):
    write("fuzz_pickle", "bytes_p%d" % p, pickle.dumps(([b"\xff\xd8ab", b"\x89PNG" * 70], [True]), protocol=p))
write("fuzz_pickle", "py2_str", b"\x80\x02]q\x00(U\x02abq\x01T\x03\x00\x00\x00cdeq\x02h\x01h\x02e]q\x03(\x88\x89e\x86q\x04.")
write("fuzz_pickle", "numpy_p2", bytes.fromhex("80025d710028636e756d70792e636f72652e6d756c746961727261790a5f7265636f6e7374727563740a7101636e756d70790a6e6461727261790a71024b00857103635f636f646563730a656e636f64650a7104580100000062710558060000006c6174696e31710686710752710887710952710a284b014b0485710b636e756d70790a64747970650a710c58020000007531710d898887710e52710f284b0358010000007c71104e4e4e4affffffff4affffffff4b00747111628968045806000000c3bfc39861627112680686711352711474711562680168024b008571166808877117527118284b014b05857119680f89680458050000000001020304711a680686711b52711c74711d6265680168024b0085711e680887711f527120284b014b01857121680c5802000000623171228988877123527124284b0368104e4e4e4affffffff4affffffff4b0074712562896804580100000001712668068671275271287471296286712a2e"))
write("fuzz_pickle", "numpy_p4", bytes.fromhex("800495f6000000000000005d94288c156e756d70792e636f72652e6d756c74696172726179948c0c5f7265636f6e7374727563749493948c056e756d7079948c076e6461727261799493944b0085944301629487945294284b014b04859468048c0564747970659493948c02753194898887945294284b038c017c944e4e4e4affffffff4affffffff4b00749462894304ffd8616294749462680368064b008594680887945294284b014b058594681089430500010203049474946265680368064b008594680887945294284b014b018594680d8c02623194898887945294284b0368114e4e4e4affffffff4affffffff4b00749462894301019474946286942e"))
write("fuzz_pickle", "numpy_p5", bytes.fromhex("800595d0000000000000005d94288c126e756d70792e636f72652e6e756d65726963948c0b5f66726f6d627566666572949394284304ffd86162948c056e756d7079948c0564747970659493948c02753194898887945294284b038c017c944e4e4e4affffffff4affffffff4b007494624b0485948c01439474945294680328960500000000000000000102030494680a4b058594680e7494529465680328960100000000000000019468078c02623194898887945294284b03680b4e4e4e4affffffff4affffffff4b007494624b018594680e7494529486942e"))

# torch.save pickles (fuzz_torch_pickle): a state dict as module.state_dict() returns it (an
# OrderedDict with _metadata), and a checkpoint around one with objects of other classes (an
# argparse Namespace, a collections.Counter), as Lightning's checkpoints hold, at protocol 2 (what
# torch.save writes). Without torch: lists stand in for the tensors.
import argparse  # noqa: E402
import collections  # noqa: E402

state = collections.OrderedDict([("model.conv1.weight", [0.5, -1.0]), ("head.kernel", [2.0])])
state._metadata = collections.OrderedDict([("", {"version": 1}), ("model", {"version": 1})])
write("fuzz_torch_pickle", "state_dict", pickle.dumps(state, protocol=2))
checkpoint = {"epoch": 25, "state_dict": state, "hyper_parameters": argparse.Namespace(arch="ir_50", m=0.4),
              "lr_schedulers": [{"milestones": collections.Counter([12, 20, 24]), "gamma": 0.1}],
              "again": argparse.Namespace(arch="ir_101")}
write("fuzz_torch_pickle", "checkpoint", pickle.dumps(checkpoint, protocol=2))
write("fuzz_torch_pickle", "single_items", pickle.dumps({"w": [1.0]}, protocol=2))
