import java.io.ByteArrayOutputStream;
import java.io.FileInputStream;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.util.ArrayList;
import java.util.List;
import java.util.zip.ZipEntry;
import java.util.zip.ZipInputStream;
import java.util.zip.ZipOutputStream;

import org.objectweb.asm.ClassReader;
import org.objectweb.asm.ClassVisitor;
import org.objectweb.asm.ClassWriter;
import org.objectweb.asm.FieldVisitor;
import org.objectweb.asm.Handle;
import org.objectweb.asm.MethodVisitor;
import org.objectweb.asm.Opcodes;
import org.objectweb.asm.Type;

/**
 * Rewrites a jar of Java 11+ classes (ONNX Runtime's Android classes.jar is Java 17, class version 61) into
 * Java 8 bytecode that dx 10 accepts and that runs without invoke-custom on Android:
 *
 * <ul>
 *   <li>class version 52;
 *   <li>nest attributes dropped, and private members made package-private (nestmates read each other's private
 *       members directly, which a Java 8 verifier refuses); private instance methods become final and their
 *       invokespecial calls invokevirtual;
 *   <li>each non-capturing or capturing lambda whose body is a static method (LambdaMetafactory.metafactory,
 *       REF_invokeStatic) becomes a generated class implementing the interface, created by a static factory.
 * </ul>
 *
 * Anything else that needs Java 9+ (another bootstrap method, string concatenation factories, records) stops the
 * rewrite with a message naming the class: better no APK than one that fails at run time.
 *
 * <p>Usage: {@code java -cp asm.jar:. Java8Classes in.jar out.jar}
 */
public final class Java8Classes {
    private static final String METAFACTORY = "java/lang/invoke/LambdaMetafactory";

    public static void main(String[] args) throws IOException {
        if (args.length != 2) {
            System.err.println("usage: Java8Classes in.jar out.jar");
            System.exit(2);
        }
        int classes = 0;
        int lambdas = 0;
        try (ZipInputStream in = new ZipInputStream(new FileInputStream(args[0]));
                ZipOutputStream out = new ZipOutputStream(new FileOutputStream(args[1]))) {
            for (ZipEntry entry = in.getNextEntry(); entry != null; entry = in.getNextEntry()) {
                byte[] bytes = readAll(in);
                if (!entry.getName().endsWith(".class") || entry.getName().startsWith("META-INF/")) {
                    if (!entry.isDirectory()) {
                        write(out, entry.getName(), bytes);
                    }
                    continue;
                }
                List<byte[]> generated = new ArrayList<byte[]>();
                byte[] rewritten = rewrite(bytes, generated);
                write(out, entry.getName(), rewritten);
                classes++;
                for (byte[] lambda : generated) {
                    write(out, new ClassReader(lambda).getClassName() + ".class", lambda);
                    lambdas++;
                }
            }
        }
        System.out.println("Java8Classes: " + classes + " classes rewritten, " + lambdas + " lambdas desugared");
    }

    static byte[] rewrite(byte[] bytes, final List<byte[]> generated) {
        ClassReader reader = new ClassReader(bytes);
        ClassWriter writer = new ClassWriter(0);
        final String owner = reader.getClassName();
        final List<String> privateMethods = new ArrayList<String>();
        // First pass: which instance methods were private (their invokespecial calls become invokevirtual).
        reader.accept(
                new ClassVisitor(Opcodes.ASM9) {
                    @Override
                    public MethodVisitor visitMethod(
                            int access, String name, String desc, String signature, String[] exceptions) {
                        if ((access & Opcodes.ACC_PRIVATE) != 0 && (access & Opcodes.ACC_STATIC) == 0) {
                            privateMethods.add(name + desc);
                        }
                        return null;
                    }
                },
                ClassReader.SKIP_CODE);
        reader.accept(
                new ClassVisitor(Opcodes.ASM9, writer) {
                    @Override
                    public void visit(
                            int version, int access, String name, String signature, String superName,
                            String[] interfaces) {
                        if ((access & Opcodes.ACC_RECORD) != 0) {
                            throw new IllegalStateException(name + " is a record: no Java 8 form");
                        }
                        super.visit(Opcodes.V1_8, access, name, signature, superName, interfaces);
                    }

                    @Override
                    public void visitNestHost(String nestHost) {}

                    @Override
                    public void visitNestMember(String nestMember) {}

                    @Override
                    public void visitPermittedSubclass(String permittedSubclass) {}

                    @Override
                    public FieldVisitor visitField(
                            int access, String name, String desc, String signature, Object value) {
                        return super.visitField(access & ~Opcodes.ACC_PRIVATE, name, desc, signature, value);
                    }

                    @Override
                    public MethodVisitor visitMethod(
                            int access, String name, String desc, String signature, String[] exceptions) {
                        int open = access & ~Opcodes.ACC_PRIVATE;
                        boolean wasPrivateInstance =
                                (access & Opcodes.ACC_PRIVATE) != 0 && (access & Opcodes.ACC_STATIC) == 0;
                        if (wasPrivateInstance && !name.equals("<init>")) {
                            open |= Opcodes.ACC_FINAL;
                        }
                        MethodVisitor next = super.visitMethod(open, name, desc, signature, exceptions);
                        return new MethodVisitor(Opcodes.ASM9, next) {
                            @Override
                            public void visitMethodInsn(
                                    int opcode, String callee, String method, String mdesc, boolean itf) {
                                if (opcode == Opcodes.INVOKESPECIAL && callee.equals(owner)
                                        && !method.equals("<init>") && privateMethods.contains(method + mdesc)) {
                                    opcode = Opcodes.INVOKEVIRTUAL;
                                }
                                super.visitMethodInsn(opcode, callee, method, mdesc, itf);
                            }

                            @Override
                            public void visitInvokeDynamicInsn(
                                    String method, String desc, Handle bootstrap, Object... bootstrapArgs) {
                                if (!bootstrap.getOwner().equals(METAFACTORY)
                                        || !bootstrap.getName().equals("metafactory")) {
                                    throw new IllegalStateException(owner + " uses invokedynamic with "
                                            + bootstrap.getOwner() + "." + bootstrap.getName()
                                            + ": no Java 8 rewrite for it");
                                }
                                Handle body = (Handle) bootstrapArgs[1];
                                if (body.getTag() != Opcodes.H_INVOKESTATIC) {
                                    throw new IllegalStateException(owner + ": a lambda whose body is not a static"
                                            + " method (" + body.getName() + "): no Java 8 rewrite for it");
                                }
                                String lambda = owner + "$$Lambda$" + generated.size();
                                generated.add(lambdaClass(lambda, method, desc, (Type) bootstrapArgs[0], body));
                                super.visitMethodInsn(Opcodes.INVOKESTATIC, lambda, "create",
                                        desc, false);
                            }
                        };
                    }
                },
                0);
        return writer.toByteArray();
    }

    /**
     * A class implementing the lambda's interface: fields for the captured values, a static {@code create} taking
     * them (the invokedynamic's own descriptor), and the interface method calling the static body with the
     * captured values first, then its parameters cast (or unboxed) to the body's types.
     */
    static byte[] lambdaClass(String name, String method, String factoryDesc, Type erased, Handle body) {
        Type interfaceType = Type.getReturnType(factoryDesc);
        Type[] captured = Type.getArgumentTypes(factoryDesc);
        Type[] bodyArgs = Type.getArgumentTypes(body.getDesc());
        Type bodyReturn = Type.getReturnType(body.getDesc());
        Type[] samArgs = erased.getArgumentTypes();
        Type samReturn = erased.getReturnType();
        ClassWriter cw = new ClassWriter(ClassWriter.COMPUTE_MAXS);
        cw.visit(Opcodes.V1_8, Opcodes.ACC_FINAL | Opcodes.ACC_SYNTHETIC | Opcodes.ACC_SUPER, name, null,
                "java/lang/Object", new String[] {interfaceType.getInternalName()});
        StringBuilder constructorDesc = new StringBuilder("(");
        for (int i = 0; i < captured.length; i++) {
            cw.visitField(Opcodes.ACC_PRIVATE | Opcodes.ACC_FINAL, "arg" + i, captured[i].getDescriptor(), null, null)
                    .visitEnd();
            constructorDesc.append(captured[i].getDescriptor());
        }
        constructorDesc.append(")V");

        MethodVisitor init = cw.visitMethod(0, "<init>", constructorDesc.toString(), null, null);
        init.visitCode();
        init.visitVarInsn(Opcodes.ALOAD, 0);
        init.visitMethodInsn(Opcodes.INVOKESPECIAL, "java/lang/Object", "<init>", "()V", false);
        int slot = 1;
        for (int i = 0; i < captured.length; i++) {
            init.visitVarInsn(Opcodes.ALOAD, 0);
            init.visitVarInsn(captured[i].getOpcode(Opcodes.ILOAD), slot);
            init.visitFieldInsn(Opcodes.PUTFIELD, name, "arg" + i, captured[i].getDescriptor());
            slot += captured[i].getSize();
        }
        init.visitInsn(Opcodes.RETURN);
        init.visitMaxs(0, 0);
        init.visitEnd();

        MethodVisitor create = cw.visitMethod(Opcodes.ACC_STATIC, "create", factoryDesc, null, null);
        create.visitCode();
        create.visitTypeInsn(Opcodes.NEW, name);
        create.visitInsn(Opcodes.DUP);
        slot = 0;
        for (Type type : captured) {
            create.visitVarInsn(type.getOpcode(Opcodes.ILOAD), slot);
            slot += type.getSize();
        }
        create.visitMethodInsn(Opcodes.INVOKESPECIAL, name, "<init>", constructorDesc.toString(), false);
        create.visitInsn(Opcodes.ARETURN);
        create.visitMaxs(0, 0);
        create.visitEnd();

        MethodVisitor sam = cw.visitMethod(Opcodes.ACC_PUBLIC, method, erased.getDescriptor(), null, null);
        sam.visitCode();
        for (int i = 0; i < captured.length; i++) {
            sam.visitVarInsn(Opcodes.ALOAD, 0);
            sam.visitFieldInsn(Opcodes.GETFIELD, name, "arg" + i, captured[i].getDescriptor());
        }
        slot = 1;
        for (int i = 0; i < samArgs.length; i++) {
            sam.visitVarInsn(samArgs[i].getOpcode(Opcodes.ILOAD), slot);
            slot += samArgs[i].getSize();
            convert(sam, samArgs[i], bodyArgs[captured.length + i]);
        }
        sam.visitMethodInsn(Opcodes.INVOKESTATIC, body.getOwner(), body.getName(), body.getDesc(), body.isInterface());
        if (samReturn.getSort() == Type.VOID) {
            if (bodyReturn.getSize() == 2) {
                sam.visitInsn(Opcodes.POP2);
            } else if (bodyReturn.getSize() == 1) {
                sam.visitInsn(Opcodes.POP);
            }
        } else {
            convert(sam, bodyReturn, samReturn);
        }
        sam.visitInsn(samReturn.getOpcode(Opcodes.IRETURN));
        sam.visitMaxs(0, 0);
        sam.visitEnd();
        cw.visitEnd();
        return cw.toByteArray();
    }

    /** The value on the stack, of type `from`, as type `to`: a cast, a box, an unbox, or nothing. */
    static void convert(MethodVisitor mv, Type from, Type to) {
        if (from.equals(to)) {
            return;
        }
        boolean fromPrimitive = from.getSort() < Type.ARRAY;
        boolean toPrimitive = to.getSort() < Type.ARRAY;
        if (fromPrimitive && !toPrimitive) {
            Type box = boxOf(from);
            mv.visitMethodInsn(Opcodes.INVOKESTATIC, box.getInternalName(), "valueOf",
                    Type.getMethodDescriptor(box, from), false);
        } else if (!fromPrimitive && toPrimitive) {
            Type box = boxOf(to);
            mv.visitTypeInsn(Opcodes.CHECKCAST, box.getInternalName());
            mv.visitMethodInsn(Opcodes.INVOKEVIRTUAL, box.getInternalName(), to.getClassName() + "Value",
                    Type.getMethodDescriptor(to), false);
        } else if (!fromPrimitive) {
            mv.visitTypeInsn(Opcodes.CHECKCAST, to.getInternalName());
        } else {
            throw new IllegalStateException("a lambda converting " + from + " to " + to + ": not supported");
        }
    }

    static Type boxOf(Type primitive) {
        switch (primitive.getSort()) {
            case Type.BOOLEAN: return Type.getObjectType("java/lang/Boolean");
            case Type.BYTE: return Type.getObjectType("java/lang/Byte");
            case Type.CHAR: return Type.getObjectType("java/lang/Character");
            case Type.SHORT: return Type.getObjectType("java/lang/Short");
            case Type.INT: return Type.getObjectType("java/lang/Integer");
            case Type.LONG: return Type.getObjectType("java/lang/Long");
            case Type.FLOAT: return Type.getObjectType("java/lang/Float");
            default: return Type.getObjectType("java/lang/Double");
        }
    }

    static byte[] readAll(InputStream in) throws IOException {
        ByteArrayOutputStream buffer = new ByteArrayOutputStream();
        byte[] chunk = new byte[65536];
        for (int n = in.read(chunk); n > 0; n = in.read(chunk)) {
            buffer.write(chunk, 0, n);
        }
        return buffer.toByteArray();
    }

    static void write(ZipOutputStream out, String name, byte[] bytes) throws IOException {
        out.putNextEntry(new ZipEntry(name));
        out.write(bytes);
        out.closeEntry();
    }
}
