{
  "targets": [
    {
      "target_name": "nitro_enclave",
      "sources": ["native/nitro_enclave.c"],
      "cflags": ["-std=gnu11", "-Wall", "-Wextra", "-O2", "-fvisibility=hidden"],
      "libraries": ["-lpthread", "-ldl"],
      "conditions": [["OS!='linux'", { "type": "none", "sources": [] }]]
    }
  ]
}
