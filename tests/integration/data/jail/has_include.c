/* An existence oracle: the module would report which branch was compiled. */
#if __has_include("@PATH@") || __has_include(<@PATH@>)
static const char kml_probe[] __used = "KML_PROBE_FOUND";
#else
static const char kml_probe[] __used = "KML_PROBE_ABSENT";
#endif
