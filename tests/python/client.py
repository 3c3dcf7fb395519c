#!/usr/bin/env python3
"""A Python client of callmood.v1.CallAnalyzer, generated from the same proto
with grpcio-tools: streams a 16-bit mono WAV into StreamCall as LINEAR16 in
20 ms chunks and prints every event as one JSON line (proto field names)."""
import argparse
import importlib
import os
import sys
import tempfile
import wave

from grpc_tools import protoc


def generate(proto_root: str, out_dir: str):
    rc = protoc.main([
        "grpc_tools.protoc",
        f"-I{proto_root}",
        f"--python_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        os.path.join(proto_root, "callmood/v1/callmood.proto"),
    ])
    if rc != 0:
        sys.exit(f"protoc failed with {rc}")
    sys.path.insert(0, out_dir)
    pb = importlib.import_module("callmood.v1.callmood_pb2")
    pb_grpc = importlib.import_module("callmood.v1.callmood_pb2_grpc")
    return pb, pb_grpc


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True)
    ap.add_argument("--wav", required=True)
    ap.add_argument("--call-id", default="python-client")
    args = ap.parse_args()

    import grpc
    from google.protobuf import json_format

    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "proto")
    with tempfile.TemporaryDirectory() as gen:
        pb, pb_grpc = generate(root, gen)
        with wave.open(args.wav, "rb") as w:
            if w.getsampwidth() != 2 or w.getnchannels() != 1:
                sys.exit("need a 16-bit mono WAV")
            rate = w.getframerate()
            pcm = w.readframes(w.getnframes())

        def requests():
            yield pb.StreamCallRequest(config=pb.CallConfig(
                call_id=args.call_id,
                channels=[pb.ChannelConfig(channel_id=1, role=pb.CALLER,
                                           encoding=pb.LINEAR16, sample_rate_hz=rate)],
                language="en"))
            step = rate // 50 * 2
            for i in range(0, len(pcm), step):
                yield pb.StreamCallRequest(audio=pb.AudioChunk(channel_id=1, data=pcm[i:i + step]))

        with grpc.insecure_channel(args.server) as channel:
            stub = pb_grpc.CallAnalyzerStub(channel)
            for ev in stub.StreamCall(requests()):
                print(json_format.MessageToJson(ev, preserving_proto_field_name=True, indent=None,
                                            always_print_fields_with_no_presence=True),
                      flush=True)


if __name__ == "__main__":
    main()
