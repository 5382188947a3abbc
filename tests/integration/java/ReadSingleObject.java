import java.io.File;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import org.apache.avro.Schema;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.message.BinaryMessageDecoder;
import org.apache.avro.message.SchemaStore;

/**
 * Decodes Avro single-object encoded values, as docs/formats.md shows.
 *
 * <p>Usage: {@code ReadSingleObject READER.avsc [WRITER.avsc ...] -- VALUE_FILE ...}. Prints one
 * record per line, as JSON.
 */
public class ReadSingleObject {
  public static void main(String[] args) throws Exception {
    List<String> all = Arrays.asList(args);
    int split = all.indexOf("--");
    Schema reader = new Schema.Parser().parse(new File(all.get(0)));
    SchemaStore.Cache writers = new SchemaStore.Cache();
    for (String writer : all.subList(1, split)) {
      writers.addSchema(new Schema.Parser().parse(new File(writer)));  // one parser per file
    }
    BinaryMessageDecoder<GenericRecord> decoder =
        new BinaryMessageDecoder<>(GenericData.get(), reader, writers);
    for (String file : all.subList(split + 1, all.size())) {
      GenericRecord record = decoder.decode(Files.readAllBytes(Path.of(file)));
      System.out.println(record);
    }
  }
}
