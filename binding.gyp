{
  "targets": [
    {
      "target_name": "sparse",
      "sources": ["native/sparse.c"],
      "cflags": ["-O2", "-Wall", "-Wextra"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
