kiln_fuzzer(exec_user LIBS kiln_executor)
