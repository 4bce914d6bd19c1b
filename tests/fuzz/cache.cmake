kiln_fuzzer(cache_record LIBS kiln_cache PkgConfig::LMDB)
