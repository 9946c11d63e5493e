// A library the `missing_dependency` plugin links against; it is never on the loader's path.
extern "C" int flatface_test_gone() {
  return 7;
}
